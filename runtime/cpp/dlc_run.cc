// dlc-run: run a dlc artifact (the directory `dlc compile` writes) without Python.
//
//   dlc-run ARTIFACT [--input [NAME=]X.npy ...] [--output Y.npy|DIR]
//
// The command line of the Python dlc-run (runtime/__main__.py): one output is saved to Y.npy,
// several to DIR/NAME.npy; exit 1 with one `error:` line for a bad artifact or input.
//
// It does what runtime/artifact.py does -- load model.so, make a Relax VM on cpu(0), feed the
// inputs and then the weights to `main` -- through the tvm-ffi C++ API only. TVM's own runtime
// headers are not usable from the wheel (tvm/runtime/tensor.h includes tvm/support/io.h, which the
// wheel does not ship), so tensors are allocated here; libtvm_runtime.so is still linked, for the
// Relax VM it registers and the TVMBackend* symbols model.so resolves against it.
#include <dlpack/dlpack.h>
#include <sched.h>
#include <tvm/ffi/container/array.h>
#include <tvm/ffi/container/map.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/error.h>
#include <tvm/ffi/extra/json.h>
#include <tvm/ffi/extra/module.h>
#include <tvm/ffi/function.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace ffi = tvm::ffi;
namespace fs = std::filesystem;
using Error = std::runtime_error;

// ---- dtypes: numpy's name, its .npy type code, and the DLPack type TVM uses ----------------------
struct DType {
  const char* name;
  const char* code;  // .npy `descr` without the byte-order character
  DLDataType dl;
};
const DType kDTypes[] = {
    {"float16", "f2", {kDLFloat, 16, 1}}, {"float32", "f4", {kDLFloat, 32, 1}},
    {"float64", "f8", {kDLFloat, 64, 1}}, {"int8", "i1", {kDLInt, 8, 1}},
    {"int16", "i2", {kDLInt, 16, 1}},     {"int32", "i4", {kDLInt, 32, 1}},
    {"int64", "i8", {kDLInt, 64, 1}},     {"uint8", "u1", {kDLUInt, 8, 1}},
    {"uint16", "u2", {kDLUInt, 16, 1}},   {"uint32", "u4", {kDLUInt, 32, 1}},
    {"uint64", "u8", {kDLUInt, 64, 1}},   {"bool", "b1", {kDLBool, 8, 1}},
};

const DType* FindDType(DLDataType dl) {
  for (const DType& t : kDTypes)
    if (t.dl.code == dl.code && t.dl.bits == dl.bits && t.dl.lanes == dl.lanes) return &t;
  return nullptr;
}

std::string ShowShape(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// ---- tensors: CPU memory with the 64-byte alignment TVM's generated code assumes -----------------
struct CpuAlloc {
  void AllocData(DLTensor* t) {
    size_t n = (ffi::GetDataSize(*t) + 63) / 64 * 64;
    t->data = std::aligned_alloc(64, n ? n : 64);
    if (!t->data) throw std::bad_alloc();
  }
  void FreeData(DLTensor* t) { std::free(t->data); }
};

ffi::Tensor Empty(const std::vector<int64_t>& shape, DLDataType dtype) {
  return ffi::Tensor::FromNDAlloc(CpuAlloc(), ffi::ShapeView(shape.data(), shape.size()), dtype,
                                  DLDevice{kDLCPU, 0});
}

std::vector<int64_t> ShapeOf(const ffi::Tensor& t) {
  return std::vector<int64_t>(t.shape().begin(), t.shape().end());
}

// ---- .npy: version 1-3 headers, little-endian, C order ------------------------------------------
// The header is a Python dict literal; numpy writes it in a fixed form, so look the keys up.
std::string HeaderValue(const std::string& header, const std::string& key, const std::string& what) {
  size_t at = header.find("'" + key + "':");
  if (at == std::string::npos) throw Error(what + ": .npy header has no '" + key + "'");
  at = header.find_first_not_of(' ', at + key.size() + 3);
  size_t end = header[at] == '(' ? header.find(')', at) + 1
             : header[at] == '\'' ? header.find('\'', at + 1) + 1 : header.find_first_of(",}", at);
  if (at == std::string::npos || end == 0 || end == std::string::npos)
    throw Error(what + ": malformed .npy header");
  return header.substr(at, end - at);
}

std::vector<int64_t> ParseShape(const std::string& tuple, const std::string& what) {
  std::vector<int64_t> shape;
  std::stringstream items(tuple.substr(1, tuple.size() - 2));
  for (std::string item; std::getline(items, item, ',');) {
    item.erase(0, item.find_first_not_of(' '));
    item.erase(item.find_last_not_of(' ') + 1);
    if (item.empty()) continue;  // the trailing comma of (n,)
    if (item.find_first_not_of("0123456789") != std::string::npos || item.size() > 15)
      throw Error(what + ": bad .npy shape " + tuple);
    shape.push_back(std::stoll(item));
  }
  return shape;
}

// Reads one array from `in`, which holds `size` bytes of .npy from its current position.
ffi::Tensor ReadNpy(std::istream& in, uint64_t size, const std::string& what) {
  char magic[10];
  if (!in.read(magic, 10) || size < 10 || std::memcmp(magic, "\x93NUMPY", 6) != 0)
    throw Error(what + ": not a .npy file");
  uint64_t header_len = uint8_t(magic[8]) | uint8_t(magic[9]) << 8, prefix = 10;
  if (magic[6] != 1) {  // versions 2 and 3 have a 4-byte header length
    unsigned char more[2];
    if (!in.read(reinterpret_cast<char*>(more), 2)) throw Error(what + ": truncated .npy header");
    header_len |= uint64_t(more[0]) << 16 | uint64_t(more[1]) << 24;
    prefix = 12;
  }
  if (header_len > size - prefix) throw Error(what + ": truncated .npy header");
  std::string header(header_len, '\0');
  if (!in.read(header.data(), header_len)) throw Error(what + ": truncated .npy header");
  std::string descr = HeaderValue(header, "descr", what);
  if (HeaderValue(header, "fortran_order", what) != "False")
    throw Error(what + ": Fortran-order array; save it C-contiguous (np.ascontiguousarray)");
  std::vector<int64_t> shape = ParseShape(HeaderValue(header, "shape", what), what);
  const DType* dtype = nullptr;
  for (const DType& t : kDTypes)
    if (descr.size() == 5 && std::strchr("<|=", descr[1]) && descr.substr(2, 2) == t.code) dtype = &t;
  if (!dtype) throw Error(what + ": unsupported .npy dtype " + descr + " (little-endian numbers and bool only)");
  ffi::Tensor tensor = Empty(shape, dtype->dl);
  uint64_t nbytes = ffi::GetDataSize(*tensor.GetDLTensorPtr());
  if (nbytes > size - prefix - header_len ||
      !in.read(static_cast<char*>(tensor.data_ptr()), std::streamsize(nbytes)))
    throw Error(what + ": truncated .npy data (shape " + ShowShape(shape) + ")");
  return tensor;
}

ffi::Tensor LoadNpy(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw Error("cannot read `" + path + "`");
  uint64_t size = in.tellg();
  in.seekg(0);
  return ReadNpy(in, size, "`" + path + "`");
}

// Writes next to `path` and returns the temporary name; the caller renames it once all succeed.
std::string SaveNpy(const fs::path& path, const ffi::Tensor& t) {
  const DType* dtype = FindDType(t.dtype());
  if (!dtype) throw Error("output `" + path.string() + "` has a dtype .npy cannot hold here");
  if (t.device().device_type != kDLCPU || !t.IsContiguous())
    throw Error("output `" + path.string() + "` is not a contiguous CPU tensor");
  std::string header = std::string("{'descr': '") + (dtype->code[1] == '1' ? "|" : "<") +
                       dtype->code + "', 'fortran_order': False, 'shape': (";
  for (int64_t d : ShapeOf(t)) header += std::to_string(d) + ", ";
  if (t.ndim() == 1) header.pop_back();  // (n,)
  else if (t.ndim() > 1) header.erase(header.size() - 2);  // (a, b)
  header += "), }";
  header.append(63 - (10 + header.size()) % 64, ' ') += '\n';  // numpy pads to 64 bytes
  std::string temp = path.string() + ".tmp";
  std::ofstream out(temp, std::ios::binary | std::ios::trunc);
  out.write("\x93NUMPY\x01\x00", 8);
  out.put(char(header.size() & 0xff)).put(char(header.size() >> 8)) << header;
  out.write(static_cast<const char*>(t.data_ptr()) + t.GetDLTensorPtr()->byte_offset,
            std::streamsize(ffi::GetDataSize(*t.GetDLTensorPtr())));
  if (!out.flush()) {
    fs::remove(temp);
    throw Error("cannot write `" + temp + "`");
  }
  return temp;
}

// ---- .npz: an uncompressed ZIP (np.savez); sizes and offsets from the central directory ---------
uint64_t Le(const unsigned char* p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = v << 8 | p[i];
  return v;
}

struct Entry { uint64_t offset, size; };

std::map<std::string, Entry> ZipEntries(std::istream& in, uint64_t file_size, const std::string& what) {
  // The end-of-central-directory record sits in the last 22 + 65535 (comment) bytes.
  uint64_t tail_len = std::min<uint64_t>(file_size, 22 + 65535);
  std::vector<unsigned char> tail(tail_len);
  in.seekg(file_size - tail_len).read(reinterpret_cast<char*>(tail.data()), tail_len);
  int64_t eocd = int64_t(tail_len) - 22;
  while (eocd >= 0 && Le(&tail[eocd], 4) != 0x06054b50) --eocd;
  if (!in || eocd < 0) throw Error(what + ": not a ZIP (.npz) file");
  uint64_t count = Le(&tail[eocd + 10], 2), cd_size = Le(&tail[eocd + 12], 4),
           cd_offset = Le(&tail[eocd + 16], 4);
  if (cd_offset > file_size || cd_size > file_size - cd_offset) throw Error(what + ": corrupt ZIP directory");
  std::vector<unsigned char> cd(cd_size);
  in.seekg(cd_offset).read(reinterpret_cast<char*>(cd.data()), cd_size);
  std::map<std::string, Entry> entries;
  for (uint64_t at = 0, i = 0; i < count; ++i) {
    if (at + 46 > cd_size || Le(&cd[at], 4) != 0x02014b50) throw Error(what + ": corrupt ZIP directory");
    uint64_t name_len = Le(&cd[at + 28], 2), extra_len = Le(&cd[at + 30], 2);
    uint64_t size = Le(&cd[at + 24], 4), offset = Le(&cd[at + 42], 4);
    if (Le(&cd[at + 10], 2) != 0) throw Error(what + ": compressed entries (np.savez_compressed) are not supported");
    if (at + 46 + name_len + extra_len > cd_size) throw Error(what + ": corrupt ZIP directory");
    // ZIP64 extra field (id 1): the 8-byte values of those fields that read 0xFFFFFFFF, in order.
    uint64_t extra_end = at + 46 + name_len + extra_len;
    for (uint64_t x = at + 46 + name_len; x + 4 <= extra_end;) {
      uint64_t id = Le(&cd[x], 2), end = std::min(x + 4 + Le(&cd[x + 2], 2), extra_end), v = x + 4;
      auto next = [&](uint64_t& field) {
        if (field == 0xffffffff && v + 8 <= end) field = Le(&cd[v], 8), v += 8;
      };
      uint64_t compressed = Le(&cd[at + 20], 4);
      if (id == 1) next(size), next(compressed), next(offset);
      x = end;
    }
    entries[std::string(reinterpret_cast<char*>(&cd[at + 46]), name_len)] = {offset, size};
    at += 46 + name_len + extra_len + Le(&cd[at + 32], 2);
  }
  return entries;
}

std::vector<ffi::Tensor> LoadWeights(const fs::path& path, const std::vector<std::string>& names) {
  std::string what = "`" + path.string() + "`";
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw Error("cannot read " + what);
  uint64_t file_size = in.tellg();
  std::map<std::string, Entry> entries = ZipEntries(in, file_size, what);
  std::vector<ffi::Tensor> weights;
  for (const std::string& name : names) {
    auto it = entries.find(name + ".npy");
    if (it == entries.end()) throw Error(what + " has no weight `" + name + "`");
    unsigned char local[30];  // the local header's name and extra lengths differ from the directory's
    in.seekg(it->second.offset).read(reinterpret_cast<char*>(local), 30);
    if (!in || Le(local, 4) != 0x04034b50) throw Error(what + ": corrupt entry " + name);
    in.seekg(Le(local + 26, 2) + Le(local + 28, 2), std::ios::cur);
    weights.push_back(ReadNpy(in, it->second.size, what + " entry " + name));
  }
  return weights;
}

// ---- manifest.json -----------------------------------------------------------------------------
struct Dim { int64_t size; std::string symbol; };  // symbol empty: a fixed size
struct Spec { std::string name, dtype; std::vector<Dim> shape; };
struct Manifest {
  std::string library, weights, transform_params, device = "cpu";
  std::vector<std::string> params;
  std::vector<Spec> inputs, outputs;
  int64_t num_cores = 0;
};

ffi::Any Field(const ffi::json::Object& obj, const char* key) {
  auto it = obj.find(ffi::String(key));
  if (it == obj.end()) throw Error(std::string("it has no \"") + key + "\"");
  return (*it).second;
}

std::vector<Spec> ReadSpecs(const ffi::Any& list) {
  std::vector<Spec> specs;
  for (const ffi::Any& item : list.cast<ffi::json::Array>()) {
    auto obj = item.cast<ffi::json::Object>();
    Spec spec{Field(obj, "name").cast<ffi::String>(), Field(obj, "dtype").cast<ffi::String>(), {}};
    for (const ffi::Any& d : Field(obj, "shape").cast<ffi::json::Array>()) {
      if (auto sym = d.as<ffi::String>()) spec.shape.push_back({-1, *sym});
      else spec.shape.push_back({d.cast<int64_t>(), ""});
    }
    specs.push_back(spec);
  }
  return specs;
}

Manifest ReadManifest(const fs::path& dir) {
  std::string where = "`" + (dir / "manifest.json").string() + "`";
  std::ifstream in(dir / "manifest.json");
  if (!in) throw Error("`" + dir.string() + "` is not a dlc artifact (no manifest.json)");
  std::stringstream text;
  text << in.rdbuf();
  ffi::String parse_error;
  ffi::json::Value json = ffi::json::Parse(text.str(), &parse_error);
  if (!parse_error.empty()) throw Error(where + " is not valid JSON: " + std::string(parse_error));
  try {
    auto obj = json.cast<ffi::json::Object>();
    auto format = Field(obj, "format").as<ffi::String>();
    if (!format || *format != "dlc-artifact/1")
      throw Error("its format is not \"dlc-artifact/1\", the one this runner reads");
    Manifest m;
    m.library = Field(obj, "library").cast<ffi::String>();
    m.weights = Field(obj, "weights").cast<ffi::String>();
    if (auto t = obj.find(ffi::String("transform_params")); t != obj.end() && (*t).second != nullptr)
      m.transform_params = (*t).second.cast<ffi::String>();
    for (const ffi::Any& p : Field(obj, "params").cast<ffi::json::Array>()) m.params.push_back(p.cast<ffi::String>());
    m.inputs = ReadSpecs(Field(obj, "inputs"));
    m.outputs = ReadSpecs(Field(obj, "outputs"));
    auto target = Field(obj, "target").cast<ffi::json::Object>();
    if (auto d = target.find(ffi::String("device")); d != target.end()) m.device = (*d).second.cast<ffi::String>();
    if (auto t = target.find(ffi::String("tvm")); t != target.end() && (*t).second.as<ffi::json::Object>()) {
      auto tvm = (*t).second.cast<ffi::json::Object>();
      if (auto c = tvm.find(ffi::String("num-cores")); c != tvm.end()) m.num_cores = (*c).second.cast<int64_t>();
    }
    return m;
  } catch (const std::exception& e) {  // ffi::Error (a wrong JSON type) or ours
    throw Error(where + " is malformed: " + e.what());
  }
}

// ---- checks ------------------------------------------------------------------------------------
// ELF e_machine values of the architectures dlc builds for
std::string MachineName(uint64_t machine) {
  return machine == 0xB7 ? "aarch64" : machine == 0x3E ? "x86_64" : "ELF machine " + std::to_string(machine);
}

void CheckMachine(const fs::path& library, const fs::path& dir) {
#if defined(__aarch64__)
  const uint64_t here = 0xB7;
#else
  const uint64_t here = 0x3E;
#endif
  unsigned char head[20] = {};
  std::ifstream in(library, std::ios::binary);
  if (!in) throw Error("`" + dir.string() + "` has no `" + library.filename().string() + "` (its manifest names it)");
  if (in.read(reinterpret_cast<char*>(head), 20) && std::memcmp(head, "\x7f" "ELF", 4) == 0 &&
      Le(head + 18, 2) != here)  // the loader would say only "wrong ELF class" or "cannot open"
    throw Error("`" + dir.string() + "` is built for " + MachineName(Le(head + 18, 2)) + ", and this runner for " +
                MachineName(here) + ": compile it with the --target of this machine");
}

void ValidateInputs(const std::vector<Spec>& specs, const std::map<std::string, ffi::Tensor>& feeds) {
  std::string names, missing, extra;
  for (const Spec& s : specs) {
    names += (names.empty() ? "" : ", ") + s.name;
    if (!feeds.count(s.name)) missing += (missing.empty() ? "" : ", ") + s.name;
  }
  for (const auto& [name, t] : feeds) {
    bool known = false;
    for (const Spec& s : specs) known |= s.name == name;
    if (!known) extra += (extra.empty() ? "" : ", ") + name;
  }
  if (!missing.empty() || !extra.empty())
    throw Error("inputs are " + names + "; missing: " + (missing.empty() ? "-" : missing) +
                "; unexpected: " + (extra.empty() ? "-" : extra));
  std::map<std::string, int64_t> bound;  // a symbolic dim must be the same in every input
  for (const Spec& s : specs) {
    const ffi::Tensor& t = feeds.at(s.name);
    std::vector<int64_t> got = ShapeOf(t);
    std::string want = "[";
    for (size_t i = 0; i < s.shape.size(); ++i)
      want += (i ? ", " : "") + (s.shape[i].symbol.empty() ? std::to_string(s.shape[i].size) : s.shape[i].symbol);
    want += "]";
    if (FindDType(t.dtype())->name != s.dtype)
      throw Error("input `" + s.name + "` must be " + s.dtype + ", got " + FindDType(t.dtype())->name);
    if (got.size() != s.shape.size())
      throw Error("input `" + s.name + "` must have shape " + want + ", got " + ShowShape(got));
    for (size_t i = 0; i < got.size(); ++i) {
      const Dim& d = s.shape[i];
      if (d.symbol.empty() && d.size != got[i])
        throw Error("input `" + s.name + "` must have shape " + want + ", got " + ShowShape(got));
      if (!d.symbol.empty() && bound.emplace(d.symbol, got[i]).first->second != got[i])
        throw Error("dim `" + d.symbol + "` is " + std::to_string(bound[d.symbol]) + " in one input and " +
                    std::to_string(got[i]) + " in `" + s.name + "`");
    }
  }
}

// TVM's default is hardware_concurrency / 2; use the cores the artifact was tuned for, at most
// those this process may use (as runtime/artifact.py does), unless TVM_NUM_THREADS is set.
void DefaultThreads(const Manifest& m) {
  if (std::getenv("TVM_NUM_THREADS")) return;
  cpu_set_t set;
  int64_t usable = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 1;
  int64_t cores = m.num_cores > 0 ? std::min(m.num_cores, usable) : usable;
  setenv("TVM_NUM_THREADS", std::to_string(std::max<int64_t>(1, cores)).c_str(), 1);
}

// ---- running -----------------------------------------------------------------------------------
ffi::Function Require(const ffi::Module& mod, const std::string& name) {
  ffi::Optional<ffi::Function> f = mod->GetFunction(name);
  if (!f.has_value()) throw Error("the model library has no function `" + name + "`");
  return *f;
}

std::vector<ffi::Tensor> Run(const fs::path& dir, const Manifest& m, const std::vector<ffi::Tensor>& inputs) {
  ffi::Module lib = ffi::Module::LoadFromFile((dir / m.library).string());
  ffi::Module vm = Require(lib, "vm_load_executable")().cast<ffi::Module>();
  Require(vm, "vm_initialization")(int(kDLCPU), 0, 2 /* pooled allocator */);
  std::vector<ffi::Tensor> params = LoadWeights(dir / m.weights, m.params);
  if (!m.transform_params.empty()) {  // weight-only work, once
    ffi::Array<ffi::Tensor> out = Require(vm, m.transform_params)(ffi::Array<ffi::Tensor>(params.begin(), params.end()))
                                      .cast<ffi::Array<ffi::Tensor>>();
    params.assign(out.begin(), out.end());
  }
  std::vector<ffi::AnyView> args(inputs.begin(), inputs.end());
  args.insert(args.end(), params.begin(), params.end());
  ffi::Any result;
  Require(vm, "main").CallPacked(args.data(), int32_t(args.size()), &result);
  std::vector<ffi::Tensor> outputs;
  if (auto one = result.as<ffi::Tensor>()) outputs.push_back(*one);
  else for (const ffi::Tensor& t : result.cast<ffi::Array<ffi::Tensor>>()) outputs.push_back(t);
  if (outputs.size() != m.outputs.size())
    throw Error("the model returned " + std::to_string(outputs.size()) + " outputs, its manifest names " +
                std::to_string(m.outputs.size()));
  return outputs;
}

const char kUsage[] = "usage: dlc-run ARTIFACT [--input [NAME=]X.npy ...] [--output Y.npy|DIR]";

int Main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc), inputs;
  std::string artifact, output;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    bool takes_value = a == "--input" || a == "--output" || a == "-o";
    if (takes_value && i + 1 == args.size()) throw Error(a + " needs a value (" + kUsage + ")");
    if (a == "--input") inputs.push_back(args[++i]);
    else if (a == "--output" || a == "-o") output = args[++i];
    else if (a.rfind("--input=", 0) == 0) inputs.push_back(a.substr(8));
    else if (a.rfind("--output=", 0) == 0) output = a.substr(9);
    else if (a == "-h" || a == "--help") {
      std::cout << kUsage << "\n";
      return 0;
    } else if (artifact.empty() && !a.empty() && a[0] != '-') artifact = a;
    else throw Error("unexpected argument `" + a + "` (" + kUsage + ")");
  }
  if (artifact.empty()) throw Error(kUsage);
  Manifest m = ReadManifest(artifact);
  if (m.device != "cpu")
    throw Error("`" + artifact + "` is built for device \"" + m.device + "\"; this runner runs CPU artifacts only "
                "(the Python dlc-run runs CUDA ones)");
  CheckMachine(fs::path(artifact) / m.library, artifact);
  std::map<std::string, ffi::Tensor> feeds;
  for (const std::string& in : inputs) {
    size_t eq = in.rfind('=');
    if (eq == std::string::npos && (inputs.size() != 1 || m.inputs.size() != 1)) {
      std::string names;
      for (const Spec& s : m.inputs) names += (names.empty() ? "" : ", ") + s.name;
      throw Error("name each input: --input NAME=X.npy (inputs: " + names + ")");
    }
    std::string name = eq == std::string::npos ? m.inputs[0].name : in.substr(0, eq);
    if (!feeds.emplace(name, LoadNpy(eq == std::string::npos ? in : in.substr(eq + 1))).second)
      throw Error("input `" + name + "` given twice");
  }
  ValidateInputs(m.inputs, feeds);
  std::vector<ffi::Tensor> ordered;
  for (const Spec& s : m.inputs) ordered.push_back(feeds.at(s.name));
  DefaultThreads(m);
  std::vector<ffi::Tensor> outputs = Run(artifact, m, ordered);
  for (size_t i = 0; i < outputs.size(); ++i)
    std::cout << m.outputs[i].name << ": " << FindDType(outputs[i].dtype())->name << ShowShape(ShapeOf(outputs[i])) << "\n";
  if (output.empty()) return 0;
  std::vector<fs::path> paths;  // one output: the file itself; several: DIR/NAME.npy
  if (outputs.size() == 1) paths.push_back(output);
  else {
    fs::create_directories(output);
    for (const Spec& s : m.outputs) paths.push_back(fs::path(output) / (s.name + ".npy"));
  }
  std::vector<std::string> temps;
  try {  // all or nothing: write every output under a temporary name, then rename them
    for (size_t i = 0; i < outputs.size(); ++i) temps.push_back(SaveNpy(paths[i], outputs[i]));
  } catch (...) {
    for (const std::string& t : temps) fs::remove(t);
    throw;
  }
  for (size_t i = 0; i < outputs.size(); ++i) fs::rename(temps[i], paths[i]);
  return 0;
}

int main(int argc, char** argv) {
  try {
    return Main(argc, argv);
  } catch (const ffi::Error& e) {  // from TVM: keep its kind, drop its traceback
    std::string msg = e.kind() + ": " + e.message();
    for (char& c : msg) c = c == '\n' ? ' ' : c;
    std::cerr << "error: " << msg << "\n";
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
  }
  return 1;
}
