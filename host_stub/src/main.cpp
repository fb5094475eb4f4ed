// host-stub: the scriptable harness host.
//
//   host-stub --config FILE
//
// Reads commands from stdin, one per line, and answers each with exactly one
// line on stdout (see command_interpreter.cpp). Logs go to stderr.
// Exit status: 0 after `quit`, end of input, SIGTERM or SIGINT (all a clean
// shutdown); 2 for bad arguments or a config the host refuses (invalid
// config, plugin refused); 1 when stdout breaks or on an unexpected failure.
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <wep/host_stub/host.hpp>
#include <iostream>
#include <optional>
#include <string>
#include <thread>

namespace {

constexpr size_t kMaxLineBytes = 2 << 20;  // longer lines are refused, not buffered

constexpr const char* kUsage =
    "usage: host-stub --config FILE\n"
    "       host-stub --help\n"
    "\n"
    "Runs the harness host with the plugins named in FILE (JSON: data_dir, settings, plugins[{path, config}];\n"
    "relative paths are relative to FILE's folder). Commands on stdin, one per line; one answer line each:\n"
    "  mutate <type> [<json object>]     -> ok <sequence>\n"
    "  online | offline                  -> ok\n"
    "  set analytics_enabled true|false  -> ok   (set <key> <json value>)\n"
    "  pending                           -> pending <N>\n"
    "  wait-delivered <timeout_ms>       -> pending <N> [dead-lettered <M>]\n"
    "  requeue-dead-letters              -> ok <N>  (dead-lettered rows back in the queue)\n"
    "  stats                             -> one line of JSON\n"
    "  sleep <ms>                        -> ok\n"
    "  load <path> [<json object>]       -> ok <plugin name>\n"
    "  unload <plugin name>              -> ok\n"
    "  reload <plugin name> [<json>]     -> ok   (same file; the new config if given)\n"
    "  plugins                           -> one line of JSON\n"
    "  quit (or end of input)            -> bye\n"
    "Exit status: 0 clean shutdown (also on SIGTERM/SIGINT), 2 bad arguments or config, 1 other failure.\n";

bool write_all(int fd, const std::string& text) {
  const char* data = text.data();
  size_t left = text.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, data, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    left -= static_cast<size_t>(n);
  }
  return true;
}

// Waits for SIGTERM/SIGINT (blocked in every thread) with sigwait, so no
// code runs in signal-handler context. On a signal: interrupts the running
// command and wakes the main loop through a pipe.
class SignalWatcher {
 public:
  SignalWatcher(wep::host_stub::CommandInterpreter& interpreter, int wake_fd)
      : interpreter_(interpreter), wake_fd_(wake_fd), thread_([this] { run(); }) {}
  ~SignalWatcher() {
    exiting_.store(true);
    pthread_kill(thread_.native_handle(), SIGTERM);  // ends sigwait; ignored because exiting_
    thread_.join();
  }
  int signal_number() const { return signal_.load(); }

 private:
  void run() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    int number = 0;
    if (sigwait(&set, &number) != 0 || exiting_.load()) return;
    signal_.store(number);
    interpreter_.interrupt();
    const char byte = 1;
    [[maybe_unused]] auto n = ::write(wake_fd_, &byte, 1);
  }

  wep::host_stub::CommandInterpreter& interpreter_;
  const int wake_fd_;
  std::atomic<bool> exiting_{false};
  std::atomic<int> signal_{0};
  std::thread thread_;
};

std::optional<std::string> parse_arguments(int argc, char** argv, int& exit_status) {
  std::optional<std::string> config;
  for (int i = 1; i < argc; ++i) {
    const std::string argument = argv[i];
    if (argument == "--help" || argument == "-h") {
      std::cout << kUsage << std::flush;
      exit_status = 0;
      return std::nullopt;
    }
    if (argument == "--config" && i + 1 < argc) {
      config = argv[++i];
    } else if (argument.rfind("--config=", 0) == 0) {
      config = argument.substr(std::strlen("--config="));
    } else {
      std::cerr << "host-stub: unexpected argument '" << argument << "'\n" << kUsage;
      exit_status = 2;
      return std::nullopt;
    }
  }
  if (!config || config->empty()) {
    std::cerr << "host-stub: --config FILE is required\n" << kUsage;
    exit_status = 2;
    return std::nullopt;
  }
  return config;
}

}  // namespace

int main(int argc, char** argv) {
  int exit_status = 0;
  const auto config_file = parse_arguments(argc, argv, exit_status);
  if (!config_file) return exit_status;

  // Before any thread exists, so every thread inherits the mask and only the
  // watcher's sigwait receives these signals.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);  // a closed stdout is an error value, not a kill

  wep::host_stub::HostOptions options;
  try {
    options = wep::host_stub::load_config_file(*config_file);
  } catch (const std::exception& e) {
    std::cerr << "host-stub: " << *config_file << ": " << e.what() << std::endl;
    return 2;
  }

  std::optional<wep::host_stub::Host> host;
  try {
    host.emplace(std::move(options));
  } catch (const std::exception& e) {
    std::cerr << "host-stub: " << *config_file << ": " << e.what() << std::endl;
    return 2;
  }

  int wake_pipe[2];
  if (::pipe2(wake_pipe, O_CLOEXEC) != 0) {
    std::cerr << "host-stub: pipe: " << std::strerror(errno) << std::endl;
    return 1;
  }
  wep::host_stub::CommandInterpreter interpreter(*host);
  exit_status = 0;
  {
    SignalWatcher watcher(interpreter, wake_pipe[1]);
    std::string buffer;
    bool discarding = false;  // inside an over-long line
    bool quit = false;
    bool input_open = true;
    auto answer = [&](std::string_view line) {
      std::string reply = interpreter.execute(line, quit);
      reply.push_back('\n');
      if (!write_all(STDOUT_FILENO, reply)) {
        std::cerr << "host-stub: cannot write to stdout: " << std::strerror(errno) << std::endl;
        exit_status = 1;
        quit = true;
      }
    };

    while (!quit && input_open && watcher.signal_number() == 0) {
      pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {wake_pipe[0], POLLIN, 0}};
      if (::poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        std::cerr << "host-stub: poll: " << std::strerror(errno) << std::endl;
        exit_status = 1;
        break;
      }
      if (fds[1].revents != 0) break;  // a signal
      if (fds[0].revents == 0) continue;
      char chunk[65536];
      const ssize_t n = ::read(STDIN_FILENO, chunk, sizeof chunk);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) {
        input_open = false;  // end of input (or a read error): like quit
        if (!buffer.empty() && !discarding) answer(buffer);
        break;
      }
      buffer.append(chunk, static_cast<size_t>(n));
      size_t start = 0;
      for (size_t newline; !quit && (newline = buffer.find('\n', start)) != std::string::npos; start = newline + 1) {
        if (discarding) {
          discarding = false;
          continue;
        }
        answer(std::string_view(buffer).substr(start, newline - start));
        if (watcher.signal_number() != 0) break;
      }
      buffer.erase(0, start);
      if (buffer.size() > kMaxLineBytes) {
        buffer.clear();
        if (!discarding) {
          const std::string reply = "error: line longer than " + std::to_string(kMaxLineBytes) + " bytes\n";
          if (!write_all(STDOUT_FILENO, reply)) exit_status = 1;
        }
        discarding = true;
      }
    }

    if (const int number = watcher.signal_number(); number != 0) {
      std::cerr << "host-stub: " << (number == SIGINT ? "SIGINT" : "SIGTERM") << ": shutting down" << std::endl;
    } else if (exit_status == 0 && !write_all(STDOUT_FILENO, quit ? "" : "bye\n")) {
      exit_status = 1;
    }
  }  // watcher joined
  host->shutdown();
  ::close(wake_pipe[0]);
  ::close(wake_pipe[1]);
  return exit_status;
}
