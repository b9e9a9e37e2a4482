#include "cuda/cublas.h"

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <mutex>

#include <dlfcn.h>
#include <glob.h>
#include <sys/stat.h>

namespace kvcake::cuda {

namespace {

bool isDir(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::vector<std::string> globDirs(const std::string& pattern) {
  std::vector<std::string> out;
  glob_t g{};
  if (::glob(pattern.c_str(), 0, nullptr, &g) == 0)
    for (size_t i = 0; i < g.gl_pathc; ++i) out.emplace_back(g.gl_pathv[i]);
  ::globfree(&g);
  return out;
}

std::string env(const char* k) {
  const char* v = std::getenv(k);
  return v ? v : "";
}

// Directories to try, in order (see cublas.h).
std::vector<std::string> candidateDirs() {
  std::vector<std::string> dirs;
  for (const char* k : {"CUDA_HOME", "CUDA_PATH"})
    if (!env(k).empty()) {
      dirs.push_back(env(k) + "/lib64");
      dirs.push_back(env(k) + "/lib");
    }
  dirs.push_back("/usr/local/cuda/lib64");
  for (const auto& d : globDirs("/usr/local/cuda*/targets/*/lib")) dirs.push_back(d);
  std::vector<std::string> sites;
  for (const char* k : {"VIRTUAL_ENV", "CONDA_PREFIX"})
    if (!env(k).empty())
      for (const auto& d : globDirs(env(k) + "/lib/python3*/site-packages")) sites.push_back(d);
  std::string pp = env("PYTHONPATH");
  for (size_t s = 0; !pp.empty();) {
    const size_t e = pp.find(':', s);
    sites.push_back(pp.substr(s, e == std::string::npos ? std::string::npos : e - s));
    if (e == std::string::npos) break;
    s = e + 1;
  }
  if (!env("HOME").empty())
    for (const auto& d : globDirs(env("HOME") + "/.local/lib/python3*/site-packages")) sites.push_back(d);
  for (const char* p : {"/usr/local/lib/python3*/dist-packages", "/usr/local/lib/python3*/site-packages",
                        "/usr/lib/python3/dist-packages", "/usr/lib/python3*/site-packages", "/opt/conda/lib/python3*/site-packages"})
    for (const auto& d : globDirs(p)) sites.push_back(d);
  for (const auto& s : sites) {
    dirs.push_back(s + "/nvidia/cublas/lib");
    dirs.push_back(s + "/nvidia/cu13/lib");
  }
  return dirs;
}

bool tryOpen(CublasApi& api, const std::string& lib, const std::string& ltLib) {
  if (!ltLib.empty()) ::dlopen(ltLib.c_str(), RTLD_NOW | RTLD_GLOBAL);  // best effort; libcublas needs it
  void* h = ::dlopen(lib.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char* e = ::dlerror();
    api.searched.push_back(lib + " (" + (e ? e : "not loadable") + ")");
    return false;
  }
  auto sym = [&](const char* name) { return ::dlsym(h, name); };
  api.create = reinterpret_cast<decltype(api.create)>(sym("cublasCreate_v2"));
  api.destroy = reinterpret_cast<decltype(api.destroy)>(sym("cublasDestroy_v2"));
  api.setStream = reinterpret_cast<decltype(api.setStream)>(sym("cublasSetStream_v2"));
  api.gemmEx = reinterpret_cast<decltype(api.gemmEx)>(sym("cublasGemmEx"));
  if (!api.create || !api.destroy || !api.setStream || !api.gemmEx) {
    api.searched.push_back(lib + " (loaded, but lacks cublasCreate_v2/cublasSetStream_v2/cublasGemmEx)");
    ::dlclose(h);
    return false;
  }
  api.searched.push_back(lib + " (loaded)");
  api.loaded = true;
  api.path = lib;
  return true;
}

CublasApi load() {
  CublasApi api;
  const char* names[] = {"libcublas.so.13", "libcublas.so.12"};
  const char* ltNames[] = {"libcublasLt.so.13", "libcublasLt.so.12"};
  const std::string forced = env("KVCAKE_CUBLAS_PATH");
  if (!forced.empty()) {
    if (isDir(forced)) {
      for (int i = 0; i < 2; ++i)
        if (tryOpen(api, forced + "/" + names[i], forced + "/" + ltNames[i])) return api;
    } else if (tryOpen(api, forced, "")) {
      return api;
    }
  }
  for (int i = 0; i < 2; ++i)
    if (tryOpen(api, names[i], ltNames[i])) return api;
  std::vector<std::string> seen;  // real paths: /usr/local/cuda is often a link to cuda-13.x
  for (const auto& d : candidateDirs()) {
    if (!isDir(d)) continue;
    char real[4096];
    const std::string key = ::realpath(d.c_str(), real) ? std::string(real) : d;
    if (std::find(seen.begin(), seen.end(), key) != seen.end()) continue;
    seen.push_back(key);
    for (int i = 0; i < 2; ++i)
      if (tryOpen(api, d + "/" + names[i], d + "/" + ltNames[i])) return api;
  }
  api.error = "cuBLAS (libcublas.so.13 or .so.12) was not found; set KVCAKE_CUBLAS_PATH to the library or its directory, "
              "install the CUDA toolkit's cuBLAS, or `pip install nvidia-cublas-cu12`. Looked in: KVCAKE_CUBLAS_PATH, "
              "the loader's search path (LD_LIBRARY_PATH), $CUDA_HOME, $CUDA_PATH, /usr/local/cuda and Python "
              "site-packages (nvidia/cublas/lib)";
  return api;
}

}  // namespace

const CublasApi& cublas() {
  static std::once_flag once;
  static CublasApi* api = nullptr;
  std::call_once(once, [] { api = new CublasApi(load()); });
  return *api;
}

}  // namespace kvcake::cuda
