// A plugin declaring another plugin API version: built twice, as
// test_plugin_major2 (TEST_API_MAJOR = host major + 1) and
// test_plugin_minor_newer (TEST_API_MINOR = host minor + 1). A host must
// refuse both before calling anything in the vtable (whose functions fail).
#include <wep/plugin.hpp>

namespace {

wep_plugin* refuse_create(const wep_host_api*, wep_sink* error) noexcept {
  wep::write(error, "test version plugin: must never be created");
  return nullptr;
}
wep_status refuse_start(wep_plugin*, wep_sink*) noexcept { return WEP_ERR_UNSUPPORTED; }
void ignore_event(wep_plugin*, const wep_event*) noexcept {}
wep_status no_pending(wep_plugin*, int64_t*) noexcept { return WEP_ERR_UNSUPPORTED; }
wep_status no_stats(wep_plugin*, wep_sink*) noexcept { return WEP_ERR_UNSUPPORTED; }
wep_status no_stop(wep_plugin*, uint32_t) noexcept { return WEP_OK; }
void no_destroy(wep_plugin*) noexcept {}

const wep_effect_plugin_vtable kVtable = {sizeof(wep_effect_plugin_vtable),
                                          refuse_create,
                                          refuse_start,
                                          ignore_event,
                                          no_pending,
                                          no_stats,
                                          no_stop,
                                          no_destroy,
                                          nullptr};  // control (API 1.2): none

const wep_plugin_descriptor kDescriptor = {
    TEST_API_MAJOR, TEST_API_MINOR, sizeof(wep_plugin_descriptor), "test_version", "1.0.0", &kVtable, nullptr};

}  // namespace

WEP_EXPORT const wep_plugin_descriptor* wep_plugin_entry(void) { return &kDescriptor; }
