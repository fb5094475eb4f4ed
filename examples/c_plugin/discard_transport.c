/* discard: a transport plugin in plain C, built without CMake from the
 * installed headers found through pkg-config:
 *
 *   cc -std=c11 -shared -fPIC -fvisibility=hidden $(pkg-config --cflags wep-plugin-api) \
 *      discard_transport.c -o libdiscard.so
 *
 * It accepts every batch without sending it anywhere and logs the row count:
 * a placeholder transport, and a template for plugins written in C. */
#include <stdio.h>
#include <stdlib.h>
#include <wep/plugin_api.h>
#include <wep/version.h>

struct wep_plugin {
  const wep_host_api* host;
};

static wep_plugin* discard_create(const wep_host_api* host, wep_sink* error) {
  wep_plugin* self = calloc(1, sizeof *self);
  if (!self) {
    if (error && error->write) error->write(error->ctx, "out of memory", 13);
    return NULL;
  }
  self->host = host;
  return self;
}

static wep_status discard_start(wep_plugin* self, wep_sink* error) {
  (void)self;
  (void)error;
  return WEP_OK;
}

static void discard_send(wep_plugin* self, const wep_batch* batch, wep_verdict* verdict) {
  char line[64];
  int size = snprintf(line, sizeof line, "discard: %zu row(s)", batch->count);
  if (self->host->log && size > 0) self->host->log(self->host->ctx, WEP_LOG_DEBUG, line, (size_t)size);
  verdict->kind = WEP_VERDICT_DELIVERED;
}

static void discard_cancel(wep_plugin* self) { (void)self; }

static wep_status discard_stop(wep_plugin* self, uint32_t timeout_ms) {
  (void)self;
  (void)timeout_ms;
  return WEP_OK;
}

static void discard_destroy(wep_plugin* self) { free(self); }

__attribute__((visibility("default"))) const wep_plugin_descriptor* wep_plugin_entry(void) {
  static const wep_transport_vtable vtable = {
      .struct_size = sizeof(wep_transport_vtable),
      .create = discard_create,
      .start = discard_start,
      .send = discard_send,
      .cancel = discard_cancel,
      .stop = discard_stop,
      .destroy = discard_destroy,
  };
  static const wep_plugin_descriptor descriptor = {
      .api_major = WEP_API_VERSION_MAJOR,
      .api_minor = WEP_API_VERSION_MINOR,
      .struct_size = sizeof(wep_plugin_descriptor),
      .name = "discard",
      .version = WEP_VERSION_STRING,
      .effect = NULL,
      .transport = &vtable,
  };
  return &descriptor;
}
