// A child process with its stdin and stdout on pipes (line protocol) and its
// stderr appended to a file. Started with posix_spawn (safe in a process that
// already runs threads). Not thread-safe: one owner.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace delivery_test {

class ChildProcess {
 public:
  // Starts `program` with `args`. Throws std::runtime_error if it cannot.
  ChildProcess(const std::string& program, const std::vector<std::string>& args,
               const std::filesystem::path& stderr_file);
  ~ChildProcess();  // SIGKILL and reap if still running
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // Writes `line` and '\n' to the child's stdin. False if the pipe is closed.
  bool write_line(const std::string& line);
  // The next line of the child's stdout (without '\n'), or nullopt at EOF or
  // when `timeout` passes first.
  std::optional<std::string> read_line(std::chrono::milliseconds timeout);
  // write_line + read_line; throws std::runtime_error naming the command when
  // no answer comes.
  std::string command(const std::string& line, std::chrono::milliseconds timeout = std::chrono::seconds(30));

  // Closes the child's stdin (end of input).
  void close_stdin();
  // SIGKILL, then reaps the child.
  void kill_hard();
  // Waits for the child to exit by itself; its exit status, or nullopt at the
  // timeout (the child is then killed) or when it died from a signal.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);

  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int stdin_fd_ = -1;
  int stdout_fd_ = -1;
  std::string buffered_;
  bool reaped_ = false;
};

}  // namespace delivery_test
