// Torch-free interface to one AOTInductor-compiled NequIP model.
//
// This header deliberately includes no torch and no LAMMPS header: LAMMPS and
// libtorch bundle different versions of the fmt library, so the pair style
// (LAMMPS side) and the model runner (torch side) live in separate
// translation units that only share the plain C++ types declared here.

#ifndef POTFORGE_NEQUIP_MODEL_H
#define POTFORGE_NEQUIP_MODEL_H

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace potforge {

// One periodic frame in the layout the compiled model expects.
// All buffers are owned by the caller and must stay alive during evaluate().
struct Frame {
  int64_t natoms = 0;
  int64_t nedges = 0;
  const double *pos = nullptr;           // natoms x 3, Angstrom
  const int64_t *types = nullptr;        // natoms, index into the model's type_names
  const int64_t *edge_index = nullptr;   // 2 x nedges: centres, then neighbours
  const double *edge_shift = nullptr;    // nedges x 3, integer lattice shifts
  std::array<double, 9> cell{};          // lattice vectors as rows
};

// What one model predicts for a frame (always float64, on the host).
struct Prediction {
  std::vector<double> atomic_energy;    // natoms
  std::vector<double> forces;           // natoms x 3, eV/Angstrom
  std::array<double, 9> virial{};       // 3 x 3, eV (virial = -stress * volume)
  double energy = 0.0;                  // sum of atomic energies
};

// A compiled model file (.nequip.pt2, target pair_nequip or ase) ready to run.
// Construction and evaluate() throw std::runtime_error with a readable message.
class NequipModel {
 public:
  explicit NequipModel(const std::string &path);
  ~NequipModel();
  NequipModel(const NequipModel &) = delete;
  NequipModel &operator=(const NequipModel &) = delete;

  const std::string &path() const { return path_; }
  double r_max() const { return r_max_; }
  const std::vector<std::string> &type_names() const { return type_names_; }
  const std::string &device() const { return device_; }

  // Run the model on one frame and fill `out`.
  void evaluate(const Frame &frame, Prediction &out);

 private:
  struct Impl;    // holds the torch objects, defined in nequip_model.cpp
  std::unique_ptr<Impl> impl_;
  std::string path_;
  double r_max_ = 0.0;
  std::vector<std::string> type_names_;
  std::string device_;
};

// Set the number of intra-op threads torch uses in this process.
void set_torch_threads(int nthreads);

// Number of intra-op threads torch uses now.
int torch_threads();

}    // namespace potforge

#endif
