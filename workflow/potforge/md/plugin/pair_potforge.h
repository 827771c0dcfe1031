// pair_style potforge: NequIP committee potential with an in-LAMMPS
// force-deviation monitor. LAMMPS side only (no torch headers).
//
//   pair_style potforge [drive first|mean|K] [every N]
//   pair_coeff * * model1.nequip.pt2 [model2.nequip.pt2 ...] Elem1 [Elem2 ...]
//
// Global vector (compute pair potforge, c_ID[i]), refreshed on deviation steps:
//   1 max over atoms of the force deviation   sqrt(mean_k |F_k - <F>|^2)  (eV/A)
//   2 mean over atoms of the force deviation                              (eV/A)
//   3 min over atoms of the force deviation                               (eV/A)
//   4 standard deviation of the committee's energy per atom               (eV/atom)
//   5 shortest interatomic distance within the cutoff (every step)        (A)
//   6 timestep of the last deviation evaluation
// Per-atom: extract_peratom("force_dev") for fix pair; "force_dev_flag" triggers it.

#ifndef LMP_PAIR_POTFORGE_H
#define LMP_PAIR_POTFORGE_H

#include "pair.h"

#include "nequip_model.h"

#include <memory>
#include <string>
#include <vector>

namespace LAMMPS_NS {

class PairPotforge : public Pair {
 public:
  PairPotforge(class LAMMPS *);
  ~PairPotforge() override;

  void compute(int, int) override;
  void settings(int, char **) override;
  void coeff(int, char **) override;
  void init_style() override;
  double init_one(int, int) override;
  void *extract(const char *, int &) override;
  void *extract_peratom(const char *, int &) override;
  double memory_usage() override;

 protected:
  void allocate();
  void require_one_rank();
  void build_frame();
  void deviation(int nlocal);

  std::vector<std::unique_ptr<potforge::NequipModel>> models;
  std::vector<std::string> model_paths;
  std::vector<int64_t> type_map;    // LAMMPS type (1-based) -> model type index
  double r_max;
  int drive;             // index of the driving model, or -1 for the committee mean
  int every;             // evaluate the whole committee every this many steps (0: never)
  int dev_trigger;       // set by fix pair to request a deviation on this step
  double *force_dev;     // per-atom force deviation of the last evaluation
  int nmax_dev;

  // frame handed to the models, rebuilt every step
  std::vector<double> pos, shift;
  std::vector<int64_t> types, edge_index, centre, neighbour;
  std::vector<int> tag_to_local;
  potforge::Frame frame;
  std::vector<potforge::Prediction> preds;
  potforge::Prediction mean;
  std::vector<double> radius;    // LAMMPS type (1-based) -> covalent radius (pair_style radii)
  double min_distance_ratio;     // smallest d_ij / (radius_i + radius_j) of the last frame
};

}    // namespace LAMMPS_NS

#endif
