// A child process with its stdin and stdout on pipes (a line protocol, as
// host-stub and test-backend speak) and its stderr appended to a file.
// Started with posix_spawn, so it is safe in a process that already runs
// threads. Every wait has a deadline; none is a fixed sleep.
//
// Thread safety: none; one owner.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace wep::test {

class ChildProcess {
 public:
  // Starts `program` with `args` (argv[1...]). Throws std::runtime_error if
  // it cannot.
  ChildProcess(const std::string& program, const std::vector<std::string>& args,
               const std::filesystem::path& stderr_file);
  ~ChildProcess();  // SIGKILL and reap if still running
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }

  // Writes `line` and '\n' to the child's stdin. False if the pipe is closed.
  bool write_line(const std::string& line);
  // Writes `text` as it is. False if the pipe is closed.
  bool write_raw(const std::string& text);
  // The next line of the child's stdout (without '\n'), or nullopt at EOF or
  // when `timeout` passes first (a guard against hangs only).
  std::optional<std::string> read_line(std::chrono::milliseconds timeout = std::chrono::seconds(60));
  // write_line + read_line; throws std::runtime_error naming the command when
  // no answer comes.
  std::string command(const std::string& line, std::chrono::milliseconds timeout = std::chrono::seconds(30));

  // Closes the child's stdin (end of input).
  void close_stdin();
  // SIGKILL, then reaps the child.
  void kill_hard();
  // Waits for the child to exit by itself: its exit status, -N if signal N
  // ended it, or nullopt at the timeout (the child is then killed).
  std::optional<int> wait_exit(std::chrono::milliseconds timeout = std::chrono::seconds(60));

 private:
  pid_t pid_ = -1;
  int pidfd_ = -1;  // -1 where the kernel has no pidfd_open: wait_exit polls
  int stdin_fd_ = -1;
  int stdout_fd_ = -1;
  std::string buffered_;
  std::optional<int> exit_status_;
  bool reaped_ = false;
};

}  // namespace wep::test
