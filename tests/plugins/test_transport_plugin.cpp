// A minimal transport plugin (delivers every batch). Used to check that the
// host refuses a transport as a top-level plugin.
#include <wep/plugin.hpp>

namespace {

class TestTransport final : public wep::TransportPlugin {
 public:
  void start() override {}
  void send(const wep_batch&, wep::Verdict& verdict) override { verdict.delivered(); }
  bool stop(uint32_t) override { return true; }
};

}  // namespace

WEP_TRANSPORT_PLUGIN("test_transport", "1.0.0", [](wep::Host) { return std::make_unique<TestTransport>(); })
