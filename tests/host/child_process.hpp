// A child process with piped stdin/stdout (stderr to a file), for driving
// the real `host-stub` executable. Waits use poll() on the pipe or on a
// pidfd with a deadline, never fixed sleeps.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace test_support {

class ChildProcess {
 public:
  // Starts `argv[0]` with `argv`; its stderr goes to `stderr_file`.
  ChildProcess(const std::vector<std::string>& argv, const std::filesystem::path& stderr_file) {
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
    const int err = ::open(stderr_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (err < 0) throw std::runtime_error("cannot open " + stderr_file.string());
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      ::dup2(in[0], STDIN_FILENO);
      ::dup2(out[1], STDOUT_FILENO);
      ::dup2(err, STDERR_FILENO);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    ::close(err);
    stdin_fd_ = in[1];
    stdout_fd_ = out[0];
    pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));  // -1: wait_exit falls back to waitpid
  }

  ~ChildProcess() {
    close_stdin();
    if (stdout_fd_ >= 0) ::close(stdout_fd_);
    if (!exit_status_) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
    if (pidfd_ >= 0) ::close(pidfd_);
  }

  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }

  void write_line(const std::string& line) { write_raw(line + "\n"); }

  void write_raw(const std::string& text) {
    const char* data = text.data();
    size_t left = text.size();
    while (left > 0) {
      const ssize_t n = ::write(stdin_fd_, data, left);
      if (n <= 0) throw std::runtime_error("cannot write to the child");
      data += n;
      left -= static_cast<size_t>(n);
    }
  }

  void close_stdin() {
    if (stdin_fd_ >= 0) ::close(stdin_fd_);
    stdin_fd_ = -1;
  }

  // The next line of stdout (without '\n'), or nullopt at end of output or
  // when nothing arrived within `timeout` (a guard against hangs only).
  std::optional<std::string> read_line(std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (auto newline = buffer_.find('\n'); newline != std::string::npos) {
        std::string line = buffer_.substr(0, newline);
        buffer_.erase(0, newline + 1);
        return line;
      }
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd fd{stdout_fd_, POLLIN, 0};
      if (::poll(&fd, 1, static_cast<int>(left.count())) <= 0) continue;
      char chunk[4096];
      const ssize_t n = ::read(stdout_fd_, chunk, sizeof chunk);
      if (n <= 0) return std::nullopt;
      buffer_.append(chunk, static_cast<size_t>(n));
    }
  }

  // One command, one answer.
  std::string ask(const std::string& line) {
    write_line(line);
    return read_line().value_or("<no answer>");
  }

  // The exit status (WEXITSTATUS), -signal if killed, or nullopt when it has
  // not exited within `timeout` (a guard against hangs only).
  std::optional<int> wait_exit(std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
    if (exit_status_) return exit_status_;
    if (pidfd_ >= 0) {
      pollfd fd{pidfd_, POLLIN, 0};
      if (::poll(&fd, 1, static_cast<int>(timeout.count())) <= 0) return std::nullopt;
    }
    int status = 0;
    if (::waitpid(pid_, &status, 0) != pid_) return std::nullopt;
    exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    return exit_status_;
  }

 private:
  pid_t pid_ = -1;
  int pidfd_ = -1;
  int stdin_fd_ = -1;
  int stdout_fd_ = -1;
  std::string buffer_;
  std::optional<int> exit_status_;
};

}  // namespace test_support
