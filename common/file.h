// Whole-file reads and atomic writes shared by the components.
// Thread safety: free functions; concurrent writers of the same path each leave a whole file
// (the last rename wins).
#ifndef ENVTUNE_COMMON_FILE_H_
#define ENVTUNE_COMMON_FILE_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace envtune {

// The bytes of the file at `path`. NotFound "cannot open PATH" when it cannot be opened;
// DataLoss when reading it fails part way.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

// Replaces the file at `path` with `contents` atomically: a reader (or a crashed process) sees
// either the old file or the whole new one, never a partial one. Writes a temp file
// `<path>.tmp-<pid>-<n>` in the same directory and renames it over `path`. `durable` (what
// checkpoints need) also fsyncs the file before the rename and the directory after it, so the
// new file survives a machine crash; files rewritten every second for readers (status.json)
// skip that, since an fsync can stall for seconds while a large checkpoint is being written.
// The directory must exist. Errors (PermissionDenied / DataLoss) name the path; the temp file
// is removed on failure.
absl::Status WriteFileAtomic(const std::string& path, std::string_view contents,
                             bool durable = true);

// fsyncs a directory (after renames into it), so the new entries survive a power loss.
absl::Status SyncDirectory(const std::string& dir);

}  // namespace envtune

#endif  // ENVTUNE_COMMON_FILE_H_
