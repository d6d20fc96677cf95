// A thin RAII layer over the SQLite C API: one connection, cached prepared
// statements, transactions that roll back unless committed, and every SQLite
// error turned into an absl::Status that carries SQLite's own message.
//
//   LRTUNE_ASSIGN_OR_RETURN(auto db, SqliteDb::Open("/var/lib/lrtune.db"));
//   LRTUNE_ASSIGN_OR_RETURN(SqliteStatement st, db->Prepare("SELECT 1"));
//
// Not thread-safe: the owner (JobStore) serializes every call with its mutex.
#ifndef LRTUNE_SERVER_SQLITE_DB_H_
#define LRTUNE_SERVER_SQLITE_DB_H_

#include <sqlite3.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace lrtune::server {

// Maps a SQLite result code to a Status: SQLITE_FULL -> RESOURCE_EXHAUSTED,
// SQLITE_CORRUPT/NOTADB -> DATA_LOSS, READONLY/BUSY/LOCKED/IOERR/CANTOPEN/
// PERM -> UNAVAILABLE, CONSTRAINT -> ALREADY_EXISTS, anything else INTERNAL.
// The message is "<context>: <sqlite message> (<result code name>)". An
// IOERR whose `system_errno` (sqlite3_system_errno) is ENOSPC, EFBIG or
// EDQUOT is a full disk: RESOURCE_EXHAUSTED "... the store's disk is full".
absl::Status SqliteStatus(int rc, absl::string_view context,
                          absl::string_view sqlite_message,
                          int system_errno = 0);

// A borrowed, cached prepared statement. Resets itself and clears its
// bindings when destroyed, so a half-read SELECT never keeps a read open.
// Bind indexes are 1-based, column indexes 0-based (as in SQLite).
class SqliteStatement {
 public:
  SqliteStatement(sqlite3_stmt* stmt, sqlite3* db) : stmt_(stmt), db_(db) {}
  SqliteStatement(SqliteStatement&& other) noexcept
      : stmt_(other.stmt_), db_(other.db_) {
    other.stmt_ = nullptr;
  }
  SqliteStatement(const SqliteStatement&) = delete;
  SqliteStatement& operator=(const SqliteStatement&) = delete;
  SqliteStatement& operator=(SqliteStatement&&) = delete;
  ~SqliteStatement();

  void BindInt64(int index, int64_t value);
  // The text and blob are copied by SQLite (SQLITE_TRANSIENT).
  void BindText(int index, absl::string_view value);
  void BindBlob(int index, absl::string_view value);
  void BindNull(int index);

  // Advances: true when a row is available, false when done, an error
  // status (see SqliteStatus) otherwise.
  absl::StatusOr<bool> Step();
  // Steps a statement that returns no rows (INSERT/UPDATE/DELETE).
  absl::Status Run();

  int64_t ColumnInt64(int column) const;
  std::string ColumnText(int column) const;
  std::string ColumnBlob(int column) const;
  bool ColumnIsNull(int column) const;

 private:
  sqlite3_stmt* stmt_;
  sqlite3* db_;
};

class SqliteDb {
 public:
  // Opens (creating if absent) the database at `path` for reading and
  // writing; ":memory:" gives a private in-memory database. Fails with
  // UNAVAILABLE when the file cannot be opened or can only be opened read-only,
  // DATA_LOSS when it is not a SQLite database.
  static absl::StatusOr<std::unique_ptr<SqliteDb>> Open(
      const std::string& path);

  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;
  ~SqliteDb();

  // Runs one or more statements without parameters.
  absl::Status Exec(absl::string_view sql);
  // Runs a statement returning one integer (e.g. "PRAGMA user_version").
  absl::StatusOr<int64_t> QueryInt64(absl::string_view sql);
  // Prepares `sql` once and returns the cached statement afterwards. At most
  // one SqliteStatement per SQL text may be alive at a time.
  absl::StatusOr<SqliteStatement> Prepare(absl::string_view sql);

  // Rows changed by the last INSERT/UPDATE/DELETE.
  int64_t Changes() const;
  const std::string& path() const { return path_; }

 private:
  SqliteDb(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}

  sqlite3* db_;
  std::string path_;
  std::map<std::string, sqlite3_stmt*, std::less<>> cache_;
};

// BEGIN IMMEDIATE on construction (via Begin), ROLLBACK on destruction unless
// Commit() succeeded. A failed Commit() is also rolled back.
//
//   LRTUNE_ASSIGN_OR_RETURN(auto txn, SqliteTransaction::Begin(db));
//   ...writes...
//   LRTUNE_RETURN_IF_ERROR(txn.Commit());
class SqliteTransaction {
 public:
  static absl::StatusOr<SqliteTransaction> Begin(SqliteDb* db);
  SqliteTransaction(SqliteTransaction&& other) noexcept : db_(other.db_) {
    other.db_ = nullptr;
  }
  SqliteTransaction(const SqliteTransaction&) = delete;
  SqliteTransaction& operator=(const SqliteTransaction&) = delete;
  SqliteTransaction& operator=(SqliteTransaction&&) = delete;
  ~SqliteTransaction();

  absl::Status Commit();

 private:
  explicit SqliteTransaction(SqliteDb* db) : db_(db) {}
  SqliteDb* db_;  // null once committed or rolled back
};

}  // namespace lrtune::server

#endif  // LRTUNE_SERVER_SQLITE_DB_H_
