// Whole-file reads shared by the components.
#ifndef ENVTUNE_COMMON_FILE_H_
#define ENVTUNE_COMMON_FILE_H_

#include <string>

#include "absl/status/statusor.h"

namespace envtune {

// The bytes of the file at `path`. NotFound "cannot open PATH" when it cannot be opened;
// DataLoss when reading it fails part way.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

}  // namespace envtune

#endif  // ENVTUNE_COMMON_FILE_H_
