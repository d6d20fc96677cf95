// Empty stand-ins for the libraries LibTorch lists but never uses, opened
// before the engine module so that opening LibTorch maps ~40 real
// libraries instead of 313, and takes ~40% fewer instructions.
//
// Debian's libtorch_cpu 1.13 is linked (DT_NEEDED) against the libraries
// of Caffe2's image, video and database operators -- OpenCV, FFmpeg,
// ZeroMQ, LMDB, LevelDB, Snappy -- and binds none of their symbols. They
// bring ~250 more libraries (Qt, GStreamer, GDAL, codecs), all linked
// -z now, so opening LibTorch binds their ~130,000 symbols and runs their
// initializers: about half of the load (bench/whole_process.md). The
// dynamic loader satisfies a DT_NEEDED entry with an object already loaded
// under that soname, so an empty library carrying the soname, opened
// first, stands in for each of them.
//
// The build makes one placeholder per such entry of the libtorch_cpu it
// links (worker/torch_placeholders.cmake names the families). Should a
// library it loads need a symbol of one (another LibTorch), dlopen fails
// with "undefined symbol" while relocating, before any initializer runs;
// the caller then closes the placeholders and opens the module again
// without them (engine_loader.cc). tests/torch_load_test.sh checks
// that every symbol binds to the same library with and without them.
//
//   TorchPlaceholders p = TorchPlaceholders::Open(dir);
//   void* h = dlopen(module, RTLD_NOW | RTLD_LOCAL);
//   if (h == nullptr) p.Close();  // and dlopen again
#ifndef LRTUNE_WORKER_TORCH_PLACEHOLDERS_H_
#define LRTUNE_WORKER_TORCH_PLACEHOLDERS_H_

#include <string>
#include <vector>

namespace lrtune::engine {

class TorchPlaceholders {
 public:
  // Opens every regular file in `dir` whose name contains ".so" (RTLD_NOW
  // | RTLD_LOCAL), in name order. A missing or unreadable directory, or a
  // file that does not open, is skipped: without placeholders LibTorch
  // loads as it would anyway. Thread-compatible; call it before the module
  // is opened.
  static TorchPlaceholders Open(const std::string& dir);

  TorchPlaceholders() = default;
  TorchPlaceholders(TorchPlaceholders&& other) noexcept;
  TorchPlaceholders& operator=(TorchPlaceholders&& other) noexcept;
  TorchPlaceholders(const TorchPlaceholders&) = delete;
  TorchPlaceholders& operator=(const TorchPlaceholders&) = delete;
  // Leaves the placeholders open: the module opened after them may refer to
  // them for as long as the process lives.
  ~TorchPlaceholders() = default;

  // Closes them (dlclose), so that a module opened next loads the real
  // libraries. Call it only when nothing opened after them holds them (the
  // module's dlopen failed).
  void Close();

  // How many are open.
  size_t size() const { return handles_.size(); }

 private:
  std::vector<void*> handles_;
};

}  // namespace lrtune::engine

#endif  // LRTUNE_WORKER_TORCH_PLACEHOLDERS_H_
