/* The binary contract between a host application and its plugins.
 *
 * A plain C ABI: structs of plain data and function pointers, so that no C++
 * object (exception, std::function target, type_info, shared_ptr deleter)
 * ever crosses the boundary or outlives the library that created it.
 *
 * Versioning: a plugin exports exactly one symbol, WEP_ENTRY_POINT_NAME, of
 * type wep_plugin_entry_fn. The descriptor it returns starts with the API
 * version the plugin was built against. A host accepts a plugin whose major
 * version equals its own and whose minor version is not newer than its own.
 * Within one major version, structs are append-only: every struct starts with
 * `struct_size`, and a reader never touches fields beyond it (see
 * WEP_HAS_FIELD). History of the minor versions:
 *   1.0  the first contract
 *   1.1  wep_host_api.read_event_log and last_mutation_sequence: the host's
 *        event log, for plugins that catch up after a crash
 *   1.2  WEP_VERDICT_PER_ROW with wep_verdict.per_row_ok: a transport that
 *        settles rows one by one says which are delivered, refused or to
 *        be sent again; wep_transport_vtable.resend_window_ms: how long a
 *        row may be sent again and still be stored once
 *
 * Strings are passed as wep_str (pointer + length, not NUL-terminated unless
 * stated) and are only valid for the duration of the call that passes them,
 * unless a comment says otherwise. Strings coming back to the caller go
 * through a caller-owned wep_sink, so memory is always freed by the side that
 * allocated it.
 *
 * No function in this file may let an exception escape. Every fallible call
 * returns a wep_status and, where it has a wep_sink for errors, writes a
 * human-readable reason into it.
 */
#ifndef WEP_PLUGIN_API_H
#define WEP_PLUGIN_API_H

#include <stddef.h>
#include <stdint.h>

#define WEP_API_VERSION_MAJOR 1
#define WEP_API_VERSION_MINOR 2

/* The one symbol a plugin exports (see wep_plugin_entry_fn). */
#define WEP_ENTRY_POINT_NAME "wep_plugin_entry"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- basics */

typedef int32_t wep_status;
#define WEP_OK 0
#define WEP_ERR_INVALID_ARGUMENT 1 /* bad config, bad input */
#define WEP_ERR_UNSUPPORTED 2      /* the callee does not offer this */
#define WEP_ERR_NOT_FOUND 3        /* e.g. an unknown setting key */
#define WEP_ERR_TIMEOUT 4          /* work abandoned at a deadline */
#define WEP_ERR_FAILED 5           /* anything else; see the error text */

/* A borrowed string: `size` bytes at `data`. data may be NULL only when
 * size is 0. */
typedef struct wep_str {
  const char* data;
  size_t size;
} wep_str;

/* A caller-owned output channel. The callee calls write() zero or more times;
 * the pieces concatenate. Valid only during the call it is passed to. */
typedef struct wep_sink {
  void* ctx;
  void (*write)(void* ctx, const char* data, size_t size);
} wep_sink;

/* True if the struct at `ptr` (whose first member is struct_size) was built
 * with `field`: a reader checks this before using a field added by a later
 * minor version. */
#define WEP_HAS_FIELD(type, ptr, field) ((ptr)->struct_size >= offsetof(type, field) + sizeof(((const type*)0)->field))

/* Log levels for wep_host_api.log. */
#define WEP_LOG_DEBUG 0
#define WEP_LOG_INFO 1
#define WEP_LOG_WARN 2
#define WEP_LOG_ERROR 3

/* --------------------------------------------------- events on the bus */

/* Event kinds, also used as a bit mask in wep_host_api.subscribe. */
#define WEP_EVENT_MUTATION_COMMITTED (1u << 0)
#define WEP_EVENT_CONNECTIVITY_CHANGED (1u << 1)
#define WEP_EVENT_SETTING_CHANGED (1u << 2)

/* A mutation the host has durably committed. */
typedef struct wep_mutation_committed {
  int64_t sequence;        /* the host's event-log sequence number, > 0,
                              strictly increasing per host data directory */
  wep_str type;            /* mutation type, e.g. "note.created" */
  wep_str payload_json;    /* a JSON object (at least "{}"); may contain
                              free text and PII: plugins must filter */
  int64_t committed_at_ms; /* commit time, Unix epoch milliseconds, UTC */
} wep_mutation_committed;

typedef struct wep_connectivity_changed {
  int32_t online;  /* 1 online, 0 offline */
  int32_t metered; /* 1 if the host knows the link is metered */
} wep_connectivity_changed;

typedef struct wep_setting_changed {
  wep_str key;        /* e.g. "analytics_enabled" */
  wep_str value_json; /* the new value as JSON, e.g. "false" */
} wep_setting_changed;

/* One event of the WriteEffectCoordinator. Only the member matching `kind`
 * is meaningful. Everything it points to is valid only during on_event. */
typedef struct wep_event {
  uint32_t struct_size;
  uint32_t kind; /* exactly one WEP_EVENT_* bit */
  wep_mutation_committed mutation;
  wep_connectivity_changed connectivity;
  wep_setting_changed setting;
} wep_event;

/* ---------------------------------------- what a host gives a plugin */

/* Receives the events of the host's log from wep_host_api.read_event_log
 * (API 1.1). visit returns nonzero to go on, 0 to stop. The event and what
 * it points to are valid only during the call. */
typedef struct wep_log_visitor {
  void* ctx;
  int32_t (*visit)(void* ctx, const wep_event* event);
} wep_log_visitor;

/* Host services handed to a plugin at create(). Owned by the host; the
 * pointer and every string in it stay valid until the plugin's destroy()
 * returns. Every function is thread-safe and may be called from any thread
 * between create() and the end of stop(); none blocks for long.
 *
 * Deliberately absent: any way to obtain an auth token. Identity (the
 * pseudonymous id), auth and analytics are separate concerns. */
typedef struct wep_host_api {
  uint32_t struct_size;
  void* ctx; /* passed back as the first argument of every function */

  wep_str plugin_config_json; /* this plugin's own config: a JSON object */
  wep_str data_dir;           /* an existing directory private to this plugin
                                 (NUL-terminated as well) */

  /* Writes one log line attributed to the plugin. */
  void (*log)(void* ctx, int32_t level, const char* message, size_t size);

  /* Writes the current value of a user setting as JSON into *value_json.
   * WEP_ERR_NOT_FOUND for an unknown key. */
  wep_status (*get_setting)(void* ctx, wep_str key, wep_sink* value_json);

  /* Writes the pseudonymous user id from the host's identity store: stable
   * across restarts, never an auth identifier. WEP_ERR_UNSUPPORTED when the
   * host has none (e.g. when a plugin hosts a transport). */
  wep_status (*get_pseudonymous_id)(void* ctx, wep_sink* out);

  /* Sets which event kinds (WEP_EVENT_* mask; 0 = none) this plugin receives
   * through its vtable's on_event. The host owns the bus connection and the
   * slot object that calls the plugin, so an unloaded plugin can never be
   * left inside the bus. Callable from start() on. WEP_ERR_UNSUPPORTED where
   * there is no bus (a transport's host). */
  wep_status (*subscribe)(void* ctx, uint32_t event_kinds);

  /* ---- API 1.1: use only if WEP_HAS_FIELD(wep_host_api, api, <field>). */

  /* Replays the host's durable event log after `after_sequence`, in log
   * order, until visit returns 0 or the log ends: every committed mutation
   * with sequence > after_sequence (kind WEP_EVENT_MUTATION_COMMITTED) and,
   * when the host logs them, the setting changes made after mutation
   * `after_sequence` was committed (kind WEP_EVENT_SETTING_CHANGED, with
   * mutation.sequence set to the sequence of the last mutation committed
   * before the change, 0 before any; a change applies to every later
   * mutation). Streams (the host never loads the range into memory);
   * concurrent commits may or may not be seen. WEP_ERR_UNSUPPORTED when the
   * host keeps no event log. */
  wep_status (*read_event_log)(void* ctx, int64_t after_sequence, const wep_log_visitor* visitor);

  /* Writes the sequence of the newest committed mutation (0 for an empty
   * log). WEP_ERR_UNSUPPORTED when the host keeps no event log. */
  wep_status (*last_mutation_sequence)(void* ctx, int64_t* out);
} wep_host_api;

/* ------------------------------------------------------ effect plugins */

typedef struct wep_plugin wep_plugin; /* opaque, owned by the plugin */

/* An effect plugin, e.g. analytics. Call order: create, start, (on_event,
 * pending_count, stats_json)*, stop, destroy. stop and destroy are also
 * called when start failed. */
typedef struct wep_effect_plugin_vtable {
  uint32_t struct_size;

  /* Creates an instance. Cheap: no threads, no I/O. Returns NULL and writes
   * the reason into *error on failure. `host` outlives the instance. */
  wep_plugin* (*create)(const wep_host_api* host, wep_sink* error);

  /* Validates the config, opens resources, starts threads, subscribes.
   * A bad config is refused here with the offending key named. */
  wep_status (*start)(wep_plugin* self, wep_sink* error);

  /* Delivers one bus event. Called by the host from one host thread at a
   * time (the plugin's lane), in bus order. Must not block for long. */
  void (*on_event)(wep_plugin* self, const wep_event* event);

  /* Number of events accepted so far that are stored and not yet delivered.
   * Returns only after every event accepted before the call is stored.
   * Thread-safe. WEP_ERR_UNSUPPORTED if the plugin keeps no queue. */
  wep_status (*pending_count)(wep_plugin* self, int64_t* out);

  /* Writes a JSON object with the plugin's counters. Thread-safe. */
  wep_status (*stats_json)(wep_plugin* self, wep_sink* out);

  /* Stops: stores what was accepted, abandons in-flight network work at the
   * latest after timeout_ms, and returns only when every thread the plugin
   * started has ended. No on_event arrives after the host calls stop.
   * Returns WEP_ERR_TIMEOUT if work had to be abandoned. */
  wep_status (*stop)(wep_plugin* self, uint32_t timeout_ms);

  /* Frees the instance. Nothing the plugin created outlives this call. */
  void (*destroy)(wep_plugin* self);
} wep_effect_plugin_vtable;

/* --------------------------------------------------- transport plugins */

/* One queued analytics row, as a transport sends it. */
typedef struct wep_row {
  int64_t queue_id;        /* the local queue's row id (not sent) */
  wep_str event_id;        /* stable UUID for server-side de-duplication */
  wep_str event_type;      /* pseudonymous event name */
  wep_str properties_json; /* a JSON object, or size 0 for null */
  wep_str user_id;         /* pseudonymous id; size 0 for null */
  wep_str created_at;      /* ISO 8601 UTC, e.g. 2026-11-20T10:00:00.123Z */
} wep_row;

typedef struct wep_batch {
  const wep_row* rows;
  size_t count; /* >= 1 */
} wep_batch;

/* What a transport says about one batch. */
#define WEP_VERDICT_DELIVERED 0   /* every row is stored at the server */
#define WEP_VERDICT_RETRY_LATER 1 /* transient; nothing lost, send again */
#define WEP_VERDICT_REJECTED                                                  \
  2                             /* the rows flagged in `rejected` are refused \
                                   for good; the others were not stored */
#define WEP_VERDICT_TOO_LARGE 3 /* the batch is too large; split it */
#define WEP_VERDICT_FAILED                 \
  4 /* not transient (auth, missing table, \
       bad config); keep rows, retry slowly */
/* API 1.2, only when the caller set per_row_ok: each row's outcome is in
 * `rejected` as one of WEP_ROW_*. Rows left at 0 (the caller's preset) are
 * sent again later, so a row is never taken as delivered by omission. */
#define WEP_VERDICT_PER_ROW 5
#define WEP_ROW_RETRY_LATER 0 /* not stored (or not confirmed): send again */
#define WEP_ROW_REJECTED 1    /* refused for good */
#define WEP_ROW_DELIVERED 2   /* stored at the server (or already there) */

/* Filled in by the transport; allocated by the caller. */
typedef struct wep_verdict {
  uint32_t struct_size;
  int32_t kind;           /* WEP_VERDICT_*; caller presets FAILED */
  int64_t retry_after_ms; /* server-requested delay, or -1 (caller preset) */
  int32_t http_status;    /* protocol status if any, else 0 (caller preset) */
  uint8_t* rejected;      /* `count` flags, zeroed by the caller; with
                             REJECTED, 1 marks a refused row. A transport that
                             cannot tell which rows were refused flags all of
                             them, and the caller splits the batch to find
                             them. */
  wep_sink reason;        /* why, for every kind but DELIVERED */

  /* ---- API 1.2: use only if WEP_HAS_FIELD(wep_verdict, verdict, <field>). */

  /* Caller preset: 1 if the caller handles WEP_VERDICT_PER_ROW, else 0. A
   * transport must not answer PER_ROW to a caller without the field or with
   * 0: it answers with the older kinds (e.g. REJECTED flagging the refused
   * rows, or RETRY_LATER for the whole batch, which is safe because sending
   * is idempotent per event_id). */
  uint32_t per_row_ok;
} wep_verdict;

/* A transport. Call order: create, start, (send | cancel)*, stop, destroy.
 * send is called from one thread at a time; cancel from any thread. */
typedef struct wep_transport_vtable {
  uint32_t struct_size;

  /* As for effect plugins. The host api of a transport has no bus, setting
   * or identity: only config, data_dir and log. */
  wep_plugin* (*create)(const wep_host_api* host, wep_sink* error);
  wep_status (*start)(wep_plugin* self, wep_sink* error);

  /* Sends one batch and fills *verdict. Blocks at most for the transport's
   * configured timeout (plus connection set-up bounded the same way).
   * Must be idempotent per event_id: sending a row twice stores it once. */
  void (*send)(wep_plugin* self, const wep_batch* batch, wep_verdict* verdict);

  /* Makes an in-flight send return soon with RETRY_LATER. Thread-safe,
   * never blocks; a no-op when nothing is in flight. */
  void (*cancel)(wep_plugin* self);

  /* Flushes and closes connections within timeout_ms. */
  wep_status (*stop)(wep_plugin* self, uint32_t timeout_ms);
  void (*destroy)(wep_plugin* self);

  /* ---- API 1.2: use only if WEP_HAS_FIELD(wep_transport_vtable, vtable,
   * <field>) and the pointer is non-NULL. */

  /* Writes into *out how long, in milliseconds after a send returned, the
   * rows of that send may be sent again and still be stored only once (the
   * server's de-duplication window less the transport's own timeout), as
   * known after start. WEP_ERR_UNSUPPORTED when unbounded or unknown (e.g. a
   * server that de-duplicates forever, or one not reachable at start). A
   * caller whose retries can wait longer warns: a resend after the window
   * stores the row twice. Thread-safe; never blocks. */
  wep_status (*resend_window_ms)(wep_plugin* self, int64_t* out);
} wep_transport_vtable;

/* ------------------------------------------------------------ the entry */

typedef struct wep_plugin_descriptor {
  uint16_t api_major; /* the API the plugin was built against: keep first */
  uint16_t api_minor;
  uint32_t struct_size;
  const char* name;    /* short, NUL-terminated, e.g. "analytics" */
  const char* version; /* the plugin's own version, NUL-terminated */
  /* Exactly one of these is non-NULL. */
  const wep_effect_plugin_vtable* effect;
  const wep_transport_vtable* transport;
} wep_plugin_descriptor;

/* The exported entry point. Returns a pointer to static data that lives as
 * long as the library is loaded; never NULL; never throws. */
typedef const wep_plugin_descriptor* (*wep_plugin_entry_fn)(void);

#ifdef __cplusplus
}
#endif

#endif /* WEP_PLUGIN_API_H */
