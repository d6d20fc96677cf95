#include "client/stderr_redirect.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>

#include "absl/strings/str_cat.h"

namespace lrtune::client {

StderrRedirect::FdBuf::int_type StderrRedirect::FdBuf::overflow(int_type c) {
  if (traits_type::eq_int_type(c, traits_type::eof())) return 0;
  const char ch = traits_type::to_char_type(c);
  return xsputn(&ch, 1) == 1 ? c : traits_type::eof();
}

std::streamsize StderrRedirect::FdBuf::xsputn(const char* s,
                                              std::streamsize n) {
  std::streamsize done = 0;
  while (done < n) {
    const ssize_t w = write(fd_, s + done, static_cast<size_t>(n - done));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    done += w;
  }
  return done;
}

absl::StatusOr<std::unique_ptr<StderrRedirect>> StderrRedirect::To(
    const std::string& path) {
  const int file =
      open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (file < 0) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot open ", path, ": ", std::strerror(errno)));
  }
  std::cerr.flush();
  std::fflush(stderr);
  const int saved = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
  if (saved < 0 || dup2(file, STDERR_FILENO) < 0) {
    const int error = errno;
    close(file);
    if (saved >= 0) close(saved);
    return absl::InternalError(
        absl::StrCat("cannot redirect stderr: ", std::strerror(error)));
  }
  close(file);
  return std::unique_ptr<StderrRedirect>(new StderrRedirect(saved, path));
}

StderrRedirect::StderrRedirect(int saved_fd, std::string path)
    : saved_fd_(saved_fd),
      path_(std::move(path)),
      buf_(saved_fd),
      original_(&buf_) {}

StderrRedirect::~StderrRedirect() {
  Restore();
  close(saved_fd_);
}

void StderrRedirect::Restore() {
  if (restored_) return;
  restored_ = true;
  std::cerr.flush();
  std::fflush(stderr);
  dup2(saved_fd_, STDERR_FILENO);
}

}  // namespace lrtune::client
