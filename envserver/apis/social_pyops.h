// Python-runtime operations shared by MessageAPI, TwitterAPI and TicketAPI (internal to
// envserver/apis; owned by those three backends).
//
// The BFCL backends are Python code run on untrusted, dynamically typed arguments, so each
// operation here reproduces what CPython 3.11 does for *any* PyValue, including the exact
// exception text when Python would raise (returned as a non-OK Status whose message is
// str(exception); callers turn it into CallOutcome::Raise). Nothing here aborts on bad types.
//
// Also holds the hostile-input limits of these three backends (see kMaxStoredValueBytes).
#ifndef ENVTUNE_ENVSERVER_APIS_SOCIAL_PYOPS_H_
#define ENVTUNE_ENVSERVER_APIS_SOCIAL_PYOPS_H_

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "envserver/pyvalue.h"
#include "envserver/tool_api.h"

namespace envtune {
namespace social {

// ---- Hostile-input limits (not in BFCL; BFCL's data never comes near them) ----------------
// A single value the model makes a backend store (a message, tweet incl. tags/mentions, comment,
// ticket field, user name, followed name, edit_ticket's updates) may take at most this many
// bytes as measured by ApproxSize().
inline constexpr size_t kMaxStoredValueBytes = 16 * 1024;
// A collection the model can grow (inbox, user_map, tweets, comments of one tweet, retweets of
// one user, following_list, mentions of one tweet, ticket_queue) may hold at most this many
// entries; adding beyond it is refused.
inline constexpr size_t kMaxCollectionEntries = 1000;
// Exceeding a limit returns BFCL's error shape {"error": "<text>"} with one of these texts.
std::string TooLargeText(std::string_view what);  // "<what> is too large (limit 16384 bytes)."
std::string TooManyText(std::string_view what);   // "Too many <what> (limit 1000)."
// {"error": text}
PyValue ErrorDict(std::string text);
// A dict with str keys, in the given order: MakeDict({{"k", PyValue::Int(1)}}).
PyValue MakeDict(std::initializer_list<std::pair<std::string_view, PyValue>> entries);

// Rough serialized size of `v` in bytes; stops counting (returns > limit) once it exceeds
// `limit` or nests deeper than 64 levels, so it is cheap on huge or deep values.
size_t ApproxSize(const PyValue& v, size_t limit = kMaxStoredValueBytes);

// ---- Python runtime operations -----------------------------------------------------------
// Python str.lower() of UTF-8 text (full Unicode 14 mapping as in CPython 3.11, including
// U+0130 -> "i\u0307" and the final-sigma rule). Invalid UTF-8 bytes pass through unchanged.
std::string PyLower(std::string_view utf8);

// The exception status Python raises (message = str(e)).
absl::Status PyError(std::string message);
// "'<type>' object has no attribute '<name>'"
absl::Status AttributeError(const PyValue& obj, std::string_view name);

// OK when hash(v) works; else "unhashable type: 'list'" (also for a list inside a tuple).
absl::Status CheckHashable(const PyValue& v);
// `item in container`.
absl::StatusOr<bool> PyContains(const PyValue& container, const PyValue& item);
// `obj[key]` for a str key (KeyError text is repr(key)).
absl::StatusOr<PyValue*> PyGetItem(PyValue& obj, std::string_view key);
// `container[key]` for any key (dict lookup, list/tuple/str integer index with negative
// wrap-around). A str element is written to `scratch` and &scratch returned.
absl::StatusOr<PyValue*> PySubscript(PyValue& container, const PyValue& key, PyValue& scratch);
// `container[key] = value`.
absl::Status PySetSubscript(PyValue& container, const PyValue& key, PyValue value);
// `obj.lower()`: the lowered text for a str, else AttributeError.
absl::StatusOr<std::string> PyLowerOf(const PyValue& obj);
// Elements of `iter(v)` (list/tuple/set items, dict keys, str characters).
absl::StatusOr<PyList> PyIterate(const PyValue& v);
// len(v).
absl::StatusOr<int64_t> PyLen(const PyValue& v);
// `list(d.items())[0]` — the first (key, value) of a dict.
absl::StatusOr<std::pair<PyValue, PyValue>> PyFirstItem(const PyValue& d);
// `obj.append(item)` (list only).
absl::Status PyAppend(PyValue& obj, PyValue item);
// `obj += 1` for the int counters (int/bool/float; others raise Python's TypeError text).
absl::Status PyIncrement(PyValue& obj);
// Python str.zfill(width) on ASCII/UTF-8 text.
std::string PyZfill(std::string_view s, size_t width);

// Status -> CallOutcome::Raise(message).
CallOutcome RaiseFrom(const absl::Status& status);

}  // namespace social
}  // namespace envtune

#endif  // ENVTUNE_ENVSERVER_APIS_SOCIAL_PYOPS_H_
