// pair_style potforge: LAMMPS side. See pair_potforge.h for the syntax.
//
// Design (one MPI rank): every step the local atoms and the periodic cell are
// handed to the compiled NequIP model as one periodic graph. Each neighbour
// j of a local atom i (found in LAMMPS' full neighbour list, j possibly a
// ghost) becomes a directed edge i -> owner(j) with the integer lattice shift
// that carries owner(j) onto j. The model then returns total forces on the
// local atoms (periodic images included), per-atom energies and the virial,
// so ghost atoms receive no force and no reverse communication is needed.

#include "pair_potforge.h"

#include "atom.h"
#include "comm.h"
#include "domain.h"
#include "error.h"
#include "force.h"
#include "memory.h"
#include "neigh_list.h"
#include "neighbor.h"
#include "update.h"
#include "utils.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

using namespace LAMMPS_NS;

// layout of the global vector exposed to compute pair
enum { DEV_MAX, DEV_MEAN, DEV_MIN, DEV_ENERGY, MIN_DIST_RATIO, DEV_STEP, NEXTRA };

PairPotforge::PairPotforge(LAMMPS *lmp) :
    Pair(lmp), r_max(0.0), drive(0), every(1), dev_trigger(0), force_dev(nullptr), nmax_dev(0),
    min_distance_ratio(0.0)
{
  single_enable = 0;
  restartinfo = 0;
  one_coeff = 1;
  manybody_flag = 1;
  no_virial_fdotr_compute = 1;    // the model returns the virial itself
  centroidstressflag = CENTROID_NOTAVAIL;

  nextra = NEXTRA;
  pvector = new double[NEXTRA];
  std::fill(pvector, pvector + NEXTRA, 0.0);
}

PairPotforge::~PairPotforge()
{
  delete[] pvector;
  memory->destroy(force_dev);
  if (allocated) {
    memory->destroy(setflag);
    memory->destroy(cutsq);
  }
}

void PairPotforge::allocate()
{
  allocated = 1;
  int n = atom->ntypes;
  memory->create(setflag, n + 1, n + 1, "pair:setflag");
  memory->create(cutsq, n + 1, n + 1, "pair:cutsq");
  for (int i = 1; i <= n; i++)
    for (int j = i; j <= n; j++) setflag[i][j] = 0;
}

/* pair_style potforge [drive first|mean|K] [every N] [radii R1 ... RN]
   radii: one covalent radius per atom type (A) for the guard's d_ij / (R_i + R_j); without it
   every radius is 0.5 A, so that the ratio is the distance in A. */

void PairPotforge::settings(int narg, char **arg)
{
  require_one_rank();
  drive = 0;
  every = 1;
  const int ntypes = atom->ntypes;
  if (ntypes < 1) error->all(FLERR, "Pair style potforge: define the box (read_data) first");
  radius.assign(ntypes + 1, 0.5);
  int iarg = 0;
  while (iarg < narg) {
    std::string key = arg[iarg];
    if (iarg + 1 >= narg) error->all(FLERR, "Pair style potforge: keyword '{}' needs a value", key);
    std::string value = arg[iarg + 1];
    if (key == "radii") {
      if (iarg + ntypes >= narg)
        error->all(FLERR, "Pair style potforge: radii needs {} values (one per atom type)", ntypes);
      for (int t = 1; t <= ntypes; t++) {
        radius[t] = utils::numeric(FLERR, arg[iarg + t], false, lmp);
        if (!(radius[t] > 0.0))
          error->all(FLERR, "Pair style potforge: radius of type {} must be > 0, got {}", t,
                     radius[t]);
      }
      iarg += ntypes + 1;
      continue;
    }
    if (key == "drive") {
      if (value == "first") drive = 0;
      else if (value == "mean") drive = -1;
      else {
        drive = utils::inumeric(FLERR, value, false, lmp) - 1;
        if (drive < 0) error->all(FLERR, "Pair style potforge: drive must be first, mean or K >= 1");
      }
    } else if (key == "every") {
      every = utils::inumeric(FLERR, value, false, lmp);
      if (every < 0) error->all(FLERR, "Pair style potforge: every must be >= 0, got {}", every);
    } else {
      error->all(FLERR, "Pair style potforge: unknown keyword '{}' (known: drive, every, radii)",
                 key);
    }
    iarg += 2;
  }
}

/* pair_coeff * * model1.pt2 [model2.pt2 ...] Elem1 ... ElemN   (N = number of atom types) */

void PairPotforge::coeff(int narg, char **arg)
{
  const int ntypes = atom->ntypes;
  if (!allocated) allocate();
  if (narg < 3 + ntypes || strcmp(arg[0], "*") != 0 || strcmp(arg[1], "*") != 0)
    error->all(FLERR,
               "Pair coeff potforge: expected 'pair_coeff * * model.nequip.pt2 [more models] "
               "followed by {} species name(s), one per atom type'",
               ntypes);

  const int nmodels = narg - 2 - ntypes;
  models.clear();
  model_paths.clear();
  for (int k = 0; k < nmodels; k++) {
    std::string path = arg[2 + k];
    try {
      models.emplace_back(new potforge::NequipModel(path));
    } catch (std::exception &e) {
      error->all(FLERR, "Pair coeff potforge: {}", e.what());
    }
    model_paths.push_back(path);
  }

  // every committee member must describe the same species and cutoff
  const auto &names = models[0]->type_names();
  r_max = models[0]->r_max();
  for (int k = 1; k < nmodels; k++) {
    if (models[k]->type_names() != names)
      error->all(FLERR, "Pair coeff potforge: model '{}' has species '{}' but '{}' has '{}'",
                 model_paths[k], utils::join_words(models[k]->type_names(), " "), model_paths[0],
                 utils::join_words(names, " "));
    if (models[k]->r_max() != r_max)
      error->all(FLERR, "Pair coeff potforge: model '{}' has r_max {} but '{}' has {}",
                 model_paths[k], models[k]->r_max(), model_paths[0], r_max);
  }

  // map LAMMPS types to the models' type indices by species name
  type_map.assign(ntypes + 1, -1);
  for (int t = 1; t <= ntypes; t++) {
    std::string species = arg[2 + nmodels + t - 1];
    auto it = std::find(names.begin(), names.end(), species);
    if (it == names.end())
      error->all(FLERR,
                 "Pair coeff potforge: species '{}' given for atom type {} is not in model '{}', "
                 "whose species are: {}",
                 species, t, model_paths[0], utils::join_words(names, " "));
    type_map[t] = it - names.begin();
  }

  if (drive >= nmodels)
    error->all(FLERR, "Pair coeff potforge: 'drive {}' but only {} model(s) given", drive + 1,
               nmodels);

  for (int i = 1; i <= ntypes; i++)
    for (int j = i; j <= ntypes; j++) setflag[i][j] = 1;

  if (comm->me == 0)
    utils::logmesg(lmp, "pair potforge: {} model(s) on {}, species {}, r_max {} A\n", nmodels,
                   models[0]->device(), utils::join_words(names, " "), r_max);
}

void PairPotforge::require_one_rank()
{
  if (comm->nprocs > 1)
    error->all(FLERR,
               "Pair style potforge runs on one MPI rank, got {}: start LAMMPS without "
               "'mpirun -np {}' and use threads (OMP_NUM_THREADS) instead",
               comm->nprocs, comm->nprocs);
}

void PairPotforge::init_style()
{
  require_one_rank();
  if (strcmp(update->unit_style, "metal") != 0)
    error->all(FLERR, "Pair style potforge requires 'units metal', got '{}'", update->unit_style);
  if (force->newton_pair == 0) error->all(FLERR, "Pair style potforge requires 'newton on'");
  if (atom->tag_enable == 0) error->all(FLERR, "Pair style potforge requires atom IDs");
  if (models.empty()) error->all(FLERR, "Pair style potforge: no model given by pair_coeff");

  // torch threads come from the environment: POTFORGE_NUM_THREADS, else OMP_NUM_THREADS
  const char *env = std::getenv("POTFORGE_NUM_THREADS");
  if (!env) env = std::getenv("OMP_NUM_THREADS");
  if (env) potforge::set_torch_threads(std::atoi(env));

  neighbor->add_request(this, NeighConst::REQ_FULL);
}

double PairPotforge::init_one(int, int)
{
  return r_max;
}

/* Fill `frame` from the local atoms and the full neighbour list. */

void PairPotforge::build_frame()
{
  const int nlocal = atom->nlocal;
  double **x = atom->x;
  const int *type = atom->type;
  const tagint *tag = atom->tag;

  // owner of every tag among the local atoms (one rank: every atom is local once)
  tagint maxtag = 0;
  for (int i = 0; i < nlocal; i++) maxtag = std::max(maxtag, tag[i]);
  tag_to_local.assign(maxtag + 1, -1);
  for (int i = 0; i < nlocal; i++) tag_to_local[tag[i]] = i;

  pos.resize(3 * nlocal);
  types.resize(nlocal);
  for (int i = 0; i < nlocal; i++) {
    for (int d = 0; d < 3; d++) pos[3 * i + d] = x[i][d];
    types[i] = type_map[type[i]];
  }

  // box vectors as rows: a = (xprd,0,0), b = (xy,yprd,0), c = (xz,yz,zprd)
  const double xprd = domain->xprd, yprd = domain->yprd, zprd = domain->zprd;
  const double xy = domain->xy, xz = domain->xz, yz = domain->yz;
  frame.cell = {xprd, 0.0, 0.0, xy, yprd, 0.0, xz, yz, zprd};

  centre.clear();
  neighbour.clear();
  shift.clear();
  const double cutsq_model = r_max * r_max;
  double min_ratio_sq = std::numeric_limits<double>::infinity();

  const int inum = list->inum;
  const int *ilist = list->ilist;
  const int *numneigh = list->numneigh;
  int **firstneigh = list->firstneigh;
  for (int ii = 0; ii < inum; ii++) {
    const int i = ilist[ii];
    const int *jlist = firstneigh[i];
    for (int jj = 0; jj < numneigh[i]; jj++) {
      const int j = jlist[jj] & NEIGHMASK;
      const double dx = x[j][0] - x[i][0], dy = x[j][1] - x[i][1], dz = x[j][2] - x[i][2];
      const double rsq = dx * dx + dy * dy + dz * dz;
      if (rsq >= cutsq_model) continue;
      const double sum = radius[type[i]] + radius[type[j]];
      min_ratio_sq = std::min(min_ratio_sq, rsq / (sum * sum));

      const int owner = (j < nlocal) ? j : (tag[j] <= maxtag ? tag_to_local[tag[j]] : -1);
      if (owner < 0) error->one(FLERR, "Pair potforge: ghost atom {} has no local owner", tag[j]);

      // integer lattice shift s with x[j] = x[owner] + s . cell
      double s[3] = {0.0, 0.0, 0.0};
      if (j != owner) {
        const double ex = x[j][0] - x[owner][0], ey = x[j][1] - x[owner][1],
                     ez = x[j][2] - x[owner][2];
        s[2] = std::round(ez / zprd);
        s[1] = std::round((ey - s[2] * yz) / yprd);
        s[0] = std::round((ex - s[1] * xy - s[2] * xz) / xprd);
      }
      centre.push_back(i);
      neighbour.push_back(owner);
      shift.insert(shift.end(), s, s + 3);
    }
  }
  // no pair within r_max: every pair is at least r_max / (2 * largest radius) of its sum
  min_distance_ratio = std::isfinite(min_ratio_sq)
      ? std::sqrt(min_ratio_sq)
      : r_max / (2.0 * *std::max_element(radius.begin() + 1, radius.end()));

  const int64_t nedges = centre.size();
  edge_index.resize(2 * nedges);
  std::copy(centre.begin(), centre.end(), edge_index.begin());
  std::copy(neighbour.begin(), neighbour.end(), edge_index.begin() + nedges);

  frame.natoms = nlocal;
  frame.nedges = nedges;
  frame.pos = pos.data();
  frame.types = types.data();
  frame.edge_index = edge_index.data();
  frame.edge_shift = shift.data();
}

/* Committee force deviation per atom: sqrt(mean_k |F_k - <F>|^2), and its summaries. */

void PairPotforge::deviation(int nlocal)
{
  const int nmodels = models.size();
  double dmax = 0.0, dmin = std::numeric_limits<double>::infinity(), dsum = 0.0;
  for (int i = 0; i < nlocal; i++) {
    double avg[3] = {0.0, 0.0, 0.0};
    for (int k = 0; k < nmodels; k++)
      for (int d = 0; d < 3; d++) avg[d] += preds[k].forces[3 * i + d] / nmodels;
    double var = 0.0;
    for (int k = 0; k < nmodels; k++)
      for (int d = 0; d < 3; d++) {
        const double diff = preds[k].forces[3 * i + d] - avg[d];
        var += diff * diff / nmodels;
      }
    force_dev[i] = std::sqrt(var);
    dmax = std::max(dmax, force_dev[i]);
    dmin = std::min(dmin, force_dev[i]);
    dsum += force_dev[i];
  }

  double emean = 0.0, evar = 0.0;
  for (int k = 0; k < nmodels; k++) emean += preds[k].energy / nmodels;
  for (int k = 0; k < nmodels; k++)
    evar += (preds[k].energy - emean) * (preds[k].energy - emean) / nmodels;

  pvector[DEV_MAX] = dmax;
  pvector[DEV_MEAN] = nlocal ? dsum / nlocal : 0.0;
  pvector[DEV_MIN] = nlocal ? dmin : 0.0;
  pvector[DEV_ENERGY] = nlocal ? std::sqrt(evar) / nlocal : 0.0;
  pvector[DEV_STEP] = update->ntimestep;
}

void PairPotforge::compute(int eflag, int vflag)
{
  ev_init(eflag, vflag);
  if (vflag_atom || cvflag_atom)
    error->all(FLERR,
               "Pair potforge gives the global virial only; per-atom stress (compute "
               "stress/atom, centroid/stress/atom) is not available");

  const int nlocal = atom->nlocal;
  if (atom->nmax > nmax_dev) {
    nmax_dev = atom->nmax;
    memory->grow(force_dev, nmax_dev, "pair:force_dev");
  }
  build_frame();
  if (frame.nedges < 2)
    error->one(FLERR,
               "Pair potforge: only {} neighbour pair(s) within r_max = {} A at step {}; the "
               "model needs at least 2 (atoms flew apart?)",
               frame.nedges, r_max, update->ntimestep);

  // which models run on this step
  const int nmodels = models.size();
  const bigint step = update->ntimestep;
  const bool dev_step = nmodels > 1 && ((every > 0 && step % every == 0) || dev_trigger);
  preds.resize(nmodels);
  try {
    for (int k = 0; k < nmodels; k++)
      if (dev_step || drive < 0 || k == drive) models[k]->evaluate(frame, preds[k]);
  } catch (std::exception &e) {
    error->one(FLERR, "Pair potforge: {}", e.what());
  }

  if (dev_step) deviation(nlocal);
  else if (nmodels == 1) std::fill(force_dev, force_dev + nlocal, 0.0);
  pvector[MIN_DIST_RATIO] = min_distance_ratio;

  // the prediction that drives the dynamics
  const potforge::Prediction *use = &preds[std::max(drive, 0)];
  if (drive < 0 && nmodels > 1) {
    mean.energy = 0.0;
    mean.atomic_energy.assign(nlocal, 0.0);
    mean.forces.assign(3 * nlocal, 0.0);
    mean.virial.fill(0.0);
    for (int k = 0; k < nmodels; k++) {
      mean.energy += preds[k].energy / nmodels;
      for (int i = 0; i < nlocal; i++) mean.atomic_energy[i] += preds[k].atomic_energy[i] / nmodels;
      for (int m = 0; m < 3 * nlocal; m++) mean.forces[m] += preds[k].forces[m] / nmodels;
      for (int m = 0; m < 9; m++) mean.virial[m] += preds[k].virial[m] / nmodels;
    }
    use = &mean;
  }

  if (!std::isfinite(use->energy))
    error->one(FLERR, "Pair potforge: the model returned a non-finite energy at step {}", step);

  double **f = atom->f;
  for (int i = 0; i < nlocal; i++)
    for (int d = 0; d < 3; d++) f[i][d] += use->forces[3 * i + d];

  if (eflag_global) eng_vdwl += use->energy;
  if (eflag_atom)
    for (int i = 0; i < nlocal; i++) eatom[i] += use->atomic_energy[i];
  if (vflag_global) {
    // LAMMPS order xx, yy, zz, xy, xz, yz from the row-major 3x3 virial
    const auto &v = use->virial;
    virial[0] += v[0];
    virial[1] += v[4];
    virial[2] += v[8];
    virial[3] += v[1];
    virial[4] += v[2];
    virial[5] += v[5];
  }
}

void *PairPotforge::extract(const char *name, int &dim)
{
  dim = 0;
  if (strcmp(name, "force_dev_flag") == 0) return (void *) &dev_trigger;
  if (strcmp(name, "max_force_dev") == 0) return (void *) &pvector[DEV_MAX];
  return nullptr;
}

void *PairPotforge::extract_peratom(const char *name, int &ncol)
{
  ncol = 0;
  if (strcmp(name, "force_dev") == 0) return (void *) force_dev;
  return nullptr;
}

double PairPotforge::memory_usage()
{
  double bytes = Pair::memory_usage();
  bytes += (double) nmax_dev * sizeof(double);
  bytes += (double) (pos.capacity() + shift.capacity()) * sizeof(double);
  bytes += (double) (types.capacity() + edge_index.capacity() + centre.capacity() +
                     neighbour.capacity()) * sizeof(int64_t);
  return bytes;
}
