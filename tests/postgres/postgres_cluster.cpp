#include "postgres_cluster.hpp"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <regex>
#include <stdexcept>
#include <wep/test/temp_dir.hpp>

extern char** environ;

namespace wep::test {
namespace {

using Clock = std::chrono::steady_clock;

constexpr auto kProgramTimeout = std::chrono::seconds(60);

// The argv prefix that runs a program as an unprivileged user.
std::vector<std::string> unprivileged_prefix() {
  if (::geteuid() != 0) return {};
  return {"setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"};
}

}  // namespace

ProgramResult run_program(const std::vector<std::string>& argv, const std::string& input,
                          std::chrono::milliseconds timeout) {
  int in_pipe[2], out_pipe[2];
  if (::pipe2(in_pipe, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in_pipe[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 2);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(in_pipe[0]);
  ::close(out_pipe[1]);
  if (rc != 0) {
    ::close(in_pipe[1]);
    ::close(out_pipe[0]);
    throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(rc));
  }
  ProgramResult result;
  size_t written = 0;
  int in_fd = in_pipe[1];
  if (input.empty()) {
    ::close(in_fd);
    in_fd = -1;
  }
  ::signal(SIGPIPE, SIG_IGN);  // the child may exit before reading all input
  const auto deadline = Clock::now() + timeout;
  bool killed = false;
  for (;;) {
    pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {in_fd, POLLOUT, 0}};
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      ::kill(pid, SIGKILL);
      killed = true;
      break;
    }
    if (::poll(fds, in_fd >= 0 ? 2 : 1, static_cast<int>(std::min<long long>(left, 1000))) < 0 && errno != EINTR) break;
    if (in_fd >= 0 && (fds[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
      const ssize_t n = ::write(in_fd, input.data() + written, input.size() - written);
      if (n > 0) written += static_cast<size_t>(n);
      if (n < 0 || written == input.size()) {
        ::close(in_fd);
        in_fd = -1;
      }
    }
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      char buffer[4096];
      const ssize_t n = ::read(out_pipe[0], buffer, sizeof buffer);
      if (n <= 0) break;
      result.output.append(buffer, static_cast<size_t>(n));
    }
  }
  if (in_fd >= 0) ::close(in_fd);
  ::close(out_pipe[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.exit_code = !killed && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (killed) result.output += "\n(killed after " + std::to_string(timeout.count()) + " ms)";
  return result;
}

struct Cluster::Impl {
  std::string bin_dir;
  wep::test::TempDir dir{"wep-pg", "/tmp"};  // short: the socket path must fit sun_path
  bool started = false;

  std::vector<std::string> command(const std::string& program) const {
    auto argv = unprivileged_prefix();
    argv.push_back(bin_dir + "/" + program);
    return argv;
  }
  std::string data_dir() const { return (dir / "data").string(); }
  std::vector<std::string> command(const std::string& program, const std::vector<std::string>& args) const {
    auto argv = command(program);
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }
  bool pg_ctl_stop(const std::string& mode) const {
    return run_program(command("pg_ctl", {"-D", data_dir(), "-m", mode, "-w", "-t", "60", "stop"}), "", kProgramTimeout)
               .exit_code == 0;
  }
};

Cluster::Cluster(const std::string& bin_dir) : impl_(std::make_unique<Impl>()) {
  impl_->bin_dir = bin_dir;
  if (::geteuid() == 0) {
    const passwd* nobody = ::getpwnam("nobody");
    const group* nogroup = ::getgrnam("nogroup");
    if (!nobody || !nogroup) throw std::runtime_error("running as root, but there is no user nobody / group nogroup");
    if (::chown(impl_->dir.str().c_str(), nobody->pw_uid, nogroup->gr_gid) != 0)
      throw std::runtime_error("cannot hand " + impl_->dir.str() + " to nobody");
  }
  const ProgramResult made =
      run_program(impl_->command("initdb", {"-D", impl_->data_dir(), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                                            "--locale=C", "--no-sync"}),
                  "", kProgramTimeout);
  if (made.exit_code != 0) throw std::runtime_error("initdb failed:\n" + made.output);

  const std::string options = "-k " + impl_->dir.str() + " -c listen_addresses= -c fsync=off";
  const ProgramResult started =
      run_program(impl_->command("pg_ctl", {"-D", impl_->data_dir(), "-o", options, "-l",
                                            (impl_->dir / "server.log").string(), "-w", "-t", "60", "start"}),
                  "", kProgramTimeout);
  if (started.exit_code != 0) throw std::runtime_error("pg_ctl start failed:\n" + started.output);
  impl_->started = true;
}

Cluster::~Cluster() {
  if (impl_->started && !impl_->pg_ctl_stop("fast")) impl_->pg_ctl_stop("immediate");
}

ProgramResult Cluster::psql(const std::string& user, const std::string& database, const std::string& script) const {
  const auto argv =
      impl_->command("psql", {"-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", impl_->dir.str(), "-U", user, "-d", database});
  return run_program(argv, "\\set VERBOSITY verbose\n" + script, kProgramTimeout);
}

std::string sqlstate_of(const std::string& psql_output) {
  static const std::regex error_line("ERROR:  ([0-9A-Z]{5}):");
  std::smatch match;
  return std::regex_search(psql_output, match, error_line) ? match[1].str() : std::string();
}

}  // namespace wep::test
