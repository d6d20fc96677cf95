#include "worker/torch_placeholders.h"

#include <dirent.h>
#include <dlfcn.h>
#include <sys/stat.h>

#include <algorithm>
#include <utility>

namespace lrtune::engine {

TorchPlaceholders TorchPlaceholders::Open(const std::string& dir) {
  TorchPlaceholders p;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return p;
  std::vector<std::string> names;
  while (const dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name.find(".so") != std::string::npos) names.push_back(name);
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    const std::string path = dir + "/" + name;
    struct stat st;
    if (stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    if (void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL)) {
      p.handles_.push_back(h);
    }
  }
  return p;
}

TorchPlaceholders::TorchPlaceholders(TorchPlaceholders&& other) noexcept
    : handles_(std::move(other.handles_)) {
  other.handles_.clear();
}

TorchPlaceholders& TorchPlaceholders::operator=(
    TorchPlaceholders&& other) noexcept {
  handles_ = std::move(other.handles_);
  other.handles_.clear();
  return *this;
}

void TorchPlaceholders::Close() {
  for (void* h : handles_) dlclose(h);
  handles_.clear();
}

}  // namespace lrtune::engine
