// Helpers for the tests in tests/ that run lrtune's real binaries as child
// processes: a free loopback port, a child whose stderr goes to a log file
// and which cannot outlive its test, a scratch directory, and reading a
// file back.
//
//   lrtune::testing::Process server({LRTUNE_SERVER_BIN, "--listen", address},
//                                   (dir / "server.log").string());
//   EXPECT_EQ(server.Stop(), 0) << server.Log();
//
// Header-only and POSIX (posix_spawn, waitpid). Nothing here is
// thread-safe: one thread owns a Process at a time.
#ifndef LRTUNE_TESTS_TEST_PROCESS_H_
#define LRTUNE_TESTS_TEST_PROCESS_H_

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

extern char** environ;

namespace lrtune::testing {

// A TCP port on 127.0.0.1 that the kernel found free a moment ago. Another
// process may take it before the caller binds it; 0 when none could be had.
inline int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

// The whole content of the file at `path`; empty when it cannot be read.
inline std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Creates the empty directory <temp>/<name>_<pid>, removing first what an
// earlier process with the same pid left there, and returns its path. The
// caller removes it when done.
inline std::filesystem::path MakeTempDir(const std::string& name) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    (name + "_" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// A child process, SIGKILLed and reaped when the Process is destroyed while
// the child still runs, so a failed assertion leaves nothing behind.
// Movable, not copyable.
class Process {
 public:
  // Starts args[0] (a path: PATH is not searched) with `args` as its argv
  // and this process's environment. With a `log` path the child's stderr is
  // appended to that file (created with mode 0600 if missing; a restarted
  // server keeps one log); with none it shares this process's stderr.
  // started() says whether the start succeeded.
  explicit Process(const std::vector<std::string>& args, std::string log = "")
      : log_(std::move(log)) {
    std::vector<char*> argv;
    for (const std::string& a : args) {
      argv.push_back(const_cast<char*>(a.c_str()));
    }
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    if (!log_.empty()) {
      posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, log_.c_str(),
                                       O_WRONLY | O_CREAT | O_APPEND, 0600);
    }
    if (posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ) !=
        0) {
      pid_ = -1;
    }
    posix_spawn_file_actions_destroy(&actions);
  }
  ~Process() { Kill(); }
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  Process(Process&& other) noexcept
      : pid_(std::exchange(other.pid_, -1)), log_(std::move(other.log_)) {}
  // Kills the child this one held, then takes over `other`'s.
  Process& operator=(Process&& other) noexcept {
    if (this != &other) {
      Kill();
      pid_ = std::exchange(other.pid_, -1);
      log_ = std::move(other.log_);
    }
    return *this;
  }

  // True from a successful start until the child is reaped (by Kill, Wait
  // or Stop).
  bool started() const { return pid_ > 0; }
  // The child's pid; -1 when it did not start or was reaped.
  pid_t pid() const { return pid_; }

  // Sends `signal` to the child; true when it was delivered.
  bool Signal(int signal) { return pid_ > 0 && kill(pid_, signal) == 0; }

  // SIGKILL, then reap: the child is gone when this returns. A no-op when
  // there is no child.
  void Kill() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  // Waits up to `within` (at least one look) for the child to end and reaps
  // it. Returns its exit status, or 128 + the signal that ended it; -1 when
  // it is still running (and left running) or there is no child.
  int Wait(std::chrono::milliseconds within) {
    if (pid_ <= 0) return -1;
    const auto deadline = std::chrono::steady_clock::now() + within;
    while (true) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      if (std::chrono::steady_clock::now() >= deadline) return -1;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

  // SIGTERM, then Wait(within). Returns the exit status (or 128 + signal);
  // -1 when the child was still running after `within` (it is then
  // killed) or there was no child.
  int Stop(std::chrono::milliseconds within = std::chrono::seconds(30)) {
    if (pid_ <= 0) return -1;
    kill(pid_, SIGTERM);
    const int status = Wait(within);
    if (status == -1) Kill();
    return status;
  }

  // What the child has written to its log so far; empty without a log.
  std::string Log() const { return log_.empty() ? "" : ReadFile(log_); }

  // Waits until the log holds `text`; false after `within` (or without a
  // log).
  bool WaitForLog(const std::string& text,
                  std::chrono::milliseconds within) const {
    const auto deadline = std::chrono::steady_clock::now() + within;
    while (std::chrono::steady_clock::now() < deadline) {
      if (Log().find(text) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }

 private:
  pid_t pid_ = -1;
  std::string log_;
};

}  // namespace lrtune::testing

#endif  // LRTUNE_TESTS_TEST_PROCESS_H_
