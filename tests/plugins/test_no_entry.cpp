// A loadable shared library that is not a plugin: it exports no
// wep_plugin_entry. A host must refuse it with a clear message.
#include <wep/plugin.hpp>

WEP_EXPORT int test_no_entry_marker(void) { return 42; }
