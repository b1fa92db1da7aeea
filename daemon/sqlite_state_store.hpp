#pragma once

#include <filesystem>
#include <memory>

#include "state_store.hpp"

namespace workflowd {

// The embedded StateStore: one SQLite file in WAL mode, which several workflowd and workflowctl
// processes on the same host may share (leases are atomic across them). Creates the file and
// its parent directories when missing and brings an older schema up to date. Throws
// StateStoreError, naming the file, when it cannot open it or when the file's schema is newer
// than this build knows.
//
// Thread-safe through one connection behind a mutex: calls from several threads run one at a time.
std::unique_ptr<StateStore> OpenSqliteStateStore(const std::filesystem::path& path);

}  // namespace workflowd
