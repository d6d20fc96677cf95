// Sends the process's stderr (fd 2) to a file for a while, keeping the
// original for the CLI's own lines. The embedded service's worker, gRPC and
// LibTorch write their logs to fd 2; the user of `lrtune range-test` wants
// the progress line and the result there, and the logs in a file.
//
//   LRTUNE_ASSIGN_OR_RETURN(auto redirect, StderrRedirect::To(log_path));
//   redirect->original() << "\r  step 12 ...";  // the terminal
//   redirect->Restore();                         // fd 2 is the terminal again
//
// Process-global (fd 2): one at a time; not thread-safe.
#ifndef LRTUNE_CLIENT_STDERR_REDIRECT_H_
#define LRTUNE_CLIENT_STDERR_REDIRECT_H_

#include <memory>
#include <ostream>
#include <streambuf>
#include <string>

#include "absl/status/statusor.h"

namespace lrtune::client {

class StderrRedirect {
 public:
  // Truncates or creates `path` and points fd 2 at it. Errors: the file
  // cannot be opened (the message names it), dup fails (Internal).
  static absl::StatusOr<std::unique_ptr<StderrRedirect>> To(
      const std::string& path);
  ~StderrRedirect();  // Restore()
  StderrRedirect(const StderrRedirect&) = delete;
  StderrRedirect& operator=(const StderrRedirect&) = delete;

  // Writes go to the original stderr at once (unbuffered); valid until
  // this object is destroyed, also after Restore.
  std::ostream& original() { return original_; }
  const std::string& path() const { return path_; }

  // Points fd 2 back at the original stderr. Idempotent.
  void Restore();

 private:
  // An unbuffered streambuf over a file descriptor.
  class FdBuf final : public std::streambuf {
   public:
    explicit FdBuf(int fd) : fd_(fd) {}

   protected:
    int_type overflow(int_type c) override;
    std::streamsize xsputn(const char* s, std::streamsize n) override;

   private:
    const int fd_;
  };

  StderrRedirect(int saved_fd, std::string path);

  const int saved_fd_;
  const std::string path_;
  FdBuf buf_;
  std::ostream original_;
  bool restored_ = false;
};

}  // namespace lrtune::client

#endif  // LRTUNE_CLIENT_STDERR_REDIRECT_H_
