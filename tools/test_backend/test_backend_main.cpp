// test-backend: the loopback PostgREST-speaking HTTPS backend as a process,
// for the demo and manual runs.
//
//   test-backend --cert FILE --key FILE [--port P] [--api-key KEY] [--table T]
//                [--persist FILE] [--ignore-stdin] [--fault SPEC]...
//
// --fault turns on a fault for every insert (see --help for the list), so a
// person can watch a client under a server that refuses everything, asks for
// Retry-After: 0, or answers like a captive portal.
//
// Prints "listening https://127.0.0.1:<port>" on stdout once it accepts
// connections, logs one line per request on stderr, and exits with status 0
// on SIGTERM or SIGINT, or when stdin reaches end of file (when stdin is a
// pipe, socket or terminal; --ignore-stdin turns that off). GET
// /rest/v1/<table> answers the stored rows as a JSON array. Exit status 2 for
// bad arguments, 1 when the server cannot start.
#include <poll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <string>
#include <vector>

#include "wep/test_backend/backend.hpp"

namespace {

constexpr const char* kUsage =
    "usage: test-backend --cert FILE --key FILE [--port P] [--api-key KEY] [--table T]"
    " [--persist FILE] [--ignore-stdin] [--fault SPEC]...\n";

int usage(const std::string& why) {
  std::cerr << "test-backend: " << why << "\n" << kUsage << "(--help lists the faults)\n";
  return 2;
}

void help() {
  std::cout << kUsage << "\n"
            << "A loopback server speaking PostgREST's insert contract (POST /rest/v1/<table>?on_conflict=event_id).\n"
            << "Prints 'listening <url>' once it accepts connections; stops on SIGTERM, SIGINT or end of stdin.\n\n"
            << "--fault SPEC (repeatable), for every insert request:\n"
            << wep::test::Backend::fault_help();
}

// Whether end of file on stdin means "stop": only for a pipe, socket or
// terminal (not /dev/null or a file, which would end the server at once).
bool stdin_is_a_lifeline() {
  struct stat st {};
  if (fstat(STDIN_FILENO, &st) != 0) return false;
  return S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode) || isatty(STDIN_FILENO);
}

}  // namespace

int main(int argc, char** argv) {
  wep::test::BackendOptions options;
  bool watch_stdin = true;
  std::vector<std::string> faults;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&](std::string& out) {
      if (i + 1 >= argc) return false;
      out = argv[++i];
      return true;
    };
    std::string port_text;
    if (arg == "--cert") {
      if (!value(options.cert_file)) return usage("--cert needs a file");
    } else if (arg == "--key") {
      if (!value(options.key_file)) return usage("--key needs a file");
    } else if (arg == "--api-key") {
      if (!value(options.api_key) || options.api_key.empty()) return usage("--api-key needs a value");
    } else if (arg == "--table") {
      if (!value(options.table) || options.table.empty()) return usage("--table needs a name");
    } else if (arg == "--persist") {
      if (!value(options.persist_file)) return usage("--persist needs a file");
    } else if (arg == "--port") {
      if (!value(port_text)) return usage("--port needs a number");
      char* end = nullptr;
      const long port = std::strtol(port_text.c_str(), &end, 10);
      if (*end != '\0' || port < 0 || port > 65535) return usage("--port: not a port number: " + port_text);
      options.port = static_cast<uint16_t>(port);
    } else if (arg == "--ignore-stdin") {
      watch_stdin = false;
    } else if (arg == "--fault") {
      std::string spec;
      if (!value(spec)) return usage("--fault needs a spec");
      faults.push_back(spec);
    } else if (arg == "--help" || arg == "-h") {
      help();
      return 0;
    } else {
      return usage("unknown argument: " + arg);
    }
  }
  if (options.cert_file.empty() || options.key_file.empty()) return usage("--cert and --key are required");
  watch_stdin = watch_stdin && stdin_is_a_lifeline();

  // Signals are read from a signalfd; block them before any thread starts so
  // every server thread inherits the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  const int signal_fd = signalfd(-1, &stop_signals, SFD_CLOEXEC);
  if (signal_fd < 0) {
    std::perror("test-backend: signalfd");
    return 1;
  }

  std::mutex log_mutex;
  options.request_log = [&log_mutex](const std::string& line) {
    std::lock_guard lock(log_mutex);
    std::cerr << "test-backend: " << line << std::endl;
  };

  std::unique_ptr<wep::test::Backend> backend;
  try {
    backend = std::make_unique<wep::test::Backend>(options);
  } catch (const std::exception& e) {
    std::cerr << e.what() << std::endl;
    return 1;
  }
  for (const std::string& spec : faults) {
    try {
      backend->set_fault(spec);
    } catch (const std::invalid_argument& e) {
      return usage(e.what());
    }
    std::cerr << "test-backend: fault " << spec << " on" << std::endl;
  }
  std::cout << "listening " << backend->ip_url() << std::endl;

  pollfd fds[2] = {{signal_fd, POLLIN, 0}, {STDIN_FILENO, POLLIN, 0}};
  for (;;) {
    const int ready = poll(fds, watch_stdin ? 2 : 1, -1);
    if (ready < 0) {
      if (errno == EINTR) continue;
      std::perror("test-backend: poll");
      break;
    }
    if (fds[0].revents & POLLIN) {
      signalfd_siginfo info{};
      if (read(signal_fd, &info, sizeof info) == sizeof info)
        std::cerr << "test-backend: signal " << info.ssi_signo << ", stopping" << std::endl;
      break;
    }
    if (watch_stdin && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) {
      char buffer[256];
      const ssize_t n = read(STDIN_FILENO, buffer, sizeof buffer);
      if (n <= 0 && !(n < 0 && errno == EINTR)) {
        std::cerr << "test-backend: stdin closed, stopping" << std::endl;
        break;
      }
    }
  }
  backend->stop();
  const auto counters = backend->counters();
  std::cerr << "test-backend: " << counters.requests << " requests, " << counters.rows_stored << " rows stored, "
            << counters.duplicates_ignored << " duplicates ignored" << std::endl;
  backend.reset();
  close(signal_fd);
  return 0;
}
