// Torch side of the potforge pair style: loads an AOTInductor-compiled NequIP
// model (.nequip.pt2) and evaluates it on one periodic frame.
//
// Only torch headers are included here (see nequip_model.h for why).

#include "nequip_model.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <torch/cuda.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <unordered_map>

namespace potforge {

namespace {

std::vector<std::string> split_words(const std::string &text)
{
  std::istringstream in(text);
  std::vector<std::string> words;
  for (std::string w; in >> w;) words.push_back(w);
  return words;
}

// Position of `name` in `names`, or -1.
int index_of(const std::vector<std::string> &names, const std::string &name)
{
  auto it = std::find(names.begin(), names.end(), name);
  return it == names.end() ? -1 : static_cast<int>(it - names.begin());
}

}    // namespace

struct NequipModel::Impl {
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> loader;
  std::vector<std::string> inputs;    // input names in call order
  int out_atomic_energy = -1;         // positions of the outputs we use
  int out_forces = -1;
  int out_virial = -1;    // target pair_nequip
  int out_stress = -1;    // target ase (virial = -stress * volume)
  c10::Device device{c10::kCPU};
};

NequipModel::NequipModel(const std::string &path) : impl_(new Impl), path_(path)
{
  if (!std::ifstream(path).good())
    throw std::runtime_error("cannot read model file '" + path + "': no such readable file");
  try {
    impl_->loader = std::make_unique<torch::inductor::AOTIModelPackageLoader>(path);
  } catch (const std::exception &e) {
    throw std::runtime_error("cannot load '" + path +
                             "' as an AOTInductor package (make it with nequip-compile "
                             "--mode aotinductor --target pair_nequip): " +
                             std::string(e.what()).substr(0, 400));
  }

  auto metadata = impl_->loader->get_metadata();
  auto need = [&](const std::string &key) -> std::string {
    auto it = metadata.find(key);
    if (it == metadata.end())
      throw std::runtime_error("model file '" + path + "' has no '" + key +
                               "' metadata: not a NequIP model compiled by nequip-compile");
    return it->second;
  };

  r_max_ = std::stod(need("r_max"));
  type_names_ = split_words(need("type_names"));

  impl_->inputs = split_words(need("nequip_aoti_inputs"));
  static const std::vector<std::string> known = {"pos", "edge_index", "atom_types", "cell",
                                                 "edge_cell_shift"};
  for (const auto &name : impl_->inputs)
    if (index_of(known, name) < 0)
      throw std::runtime_error("model file '" + path + "' expects an input '" + name +
                               "' that pair potforge does not provide; recompile with "
                               "--target pair_nequip");

  auto outputs = split_words(need("nequip_aoti_outputs"));
  impl_->out_atomic_energy = index_of(outputs, "atomic_energy");
  impl_->out_forces = index_of(outputs, "forces");
  impl_->out_virial = index_of(outputs, "virial");
  impl_->out_stress = index_of(outputs, "stress");
  if (impl_->out_atomic_energy < 0 || impl_->out_forces < 0 ||
      (impl_->out_virial < 0 && impl_->out_stress < 0))
    throw std::runtime_error("model file '" + path + "' outputs '" +
                             need("nequip_aoti_outputs") +
                             "'; pair potforge needs atomic_energy, forces and virial (or "
                             "stress): recompile with --target pair_nequip");

  // The compiled kernels are tied to the device they were compiled for.
  auto dev = metadata.count("AOTI_DEVICE_KEY") ? metadata["AOTI_DEVICE_KEY"] : "cpu";
  if (dev == "cuda") {
    if (!torch::cuda::is_available())
      throw std::runtime_error("model file '" + path +
                               "' was compiled for CUDA but torch sees no CUDA device; "
                               "recompile with --device cpu or run on a GPU node");
    impl_->device = c10::Device(c10::kCUDA, 0);
  } else if (dev != "cpu") {
    throw std::runtime_error("model file '" + path + "' was compiled for device '" + dev +
                             "'; pair potforge supports cpu and cuda");
  }
  device_ = dev;
}

NequipModel::~NequipModel() = default;

void NequipModel::evaluate(const Frame &frame, Prediction &out)
{
  c10::InferenceMode guard;
  const int64_t n = frame.natoms, e = frame.nedges;
  auto f64 = at::TensorOptions().dtype(at::kDouble);
  auto i64 = at::TensorOptions().dtype(at::kLong);

  // Wrap the caller's buffers without copying (the model only reads its inputs),
  // then move them to the model's device. The model does not check dtypes, so
  // every floating input is float64 as the interface requires.
  std::array<double, 9> cell = frame.cell;
  std::unordered_map<std::string, at::Tensor> by_name = {
      {"pos", at::from_blob(const_cast<double *>(frame.pos), {n, 3}, f64)},
      {"edge_index", at::from_blob(const_cast<int64_t *>(frame.edge_index), {2, e}, i64)},
      {"atom_types", at::from_blob(const_cast<int64_t *>(frame.types), {n}, i64)},
      {"cell", at::from_blob(cell.data(), {1, 3, 3}, f64)},
      {"edge_cell_shift", at::from_blob(const_cast<double *>(frame.edge_shift), {e, 3}, f64)},
  };
  std::vector<at::Tensor> inputs;
  inputs.reserve(impl_->inputs.size());
  for (const auto &name : impl_->inputs) inputs.push_back(by_name.at(name).to(impl_->device));

  std::vector<at::Tensor> outputs;
  try {
    outputs = impl_->loader->run(inputs);
  } catch (const std::exception &err) {
    throw std::runtime_error("model '" + path_ + "' failed on a frame of " + std::to_string(n) +
                             " atoms and " + std::to_string(e) +
                             " edges: " + std::string(err.what()).substr(0, 400));
  }

  auto host = [&](int k) {
    return outputs.at(k).to(at::kCPU, at::kDouble).contiguous();
  };
  at::Tensor ae = host(impl_->out_atomic_energy);
  at::Tensor forces = host(impl_->out_forces);

  out.atomic_energy.assign(ae.data_ptr<double>(), ae.data_ptr<double>() + n);
  out.forces.assign(forces.data_ptr<double>(), forces.data_ptr<double>() + 3 * n);
  out.energy = 0.0;
  for (double v : out.atomic_energy) out.energy += v;

  if (impl_->out_virial >= 0) {
    at::Tensor vir = host(impl_->out_virial);
    std::copy(vir.data_ptr<double>(), vir.data_ptr<double>() + 9, out.virial.begin());
  } else {
    // ase target: stress in eV/A^3 with ASE's sign; virial = -stress * volume.
    at::Tensor stress = host(impl_->out_stress);
    const auto &h = frame.cell;
    double volume = h[0] * (h[4] * h[8] - h[5] * h[7]) - h[1] * (h[3] * h[8] - h[5] * h[6]) +
        h[2] * (h[3] * h[7] - h[4] * h[6]);
    volume = std::abs(volume);
    for (int k = 0; k < 9; ++k) out.virial[k] = -stress.data_ptr<double>()[k] * volume;
  }
}

void set_torch_threads(int nthreads)
{
  if (nthreads > 0) at::set_num_threads(nthreads);
}

int torch_threads()
{
  return at::get_num_threads();
}

}    // namespace potforge
