#include "server/sqlite_db.h"

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace lrtune::server {

absl::Status SqliteStatus(int rc, absl::string_view context,
                          absl::string_view sqlite_message, int system_errno) {
  std::string message = absl::StrCat(context, ": ", sqlite_message, " (",
                                     sqlite3_errstr(rc), ")");
  if (system_errno != 0) {
    absl::StrAppend(&message, " [", std::strerror(system_errno), "]");
  }
  if (rc == SQLITE_IOERR_WRITE || rc == SQLITE_IOERR_FSYNC) {
    // A short write is how a full disk or file size limit usually shows
    // (SQLite records no errno for it).
    absl::StrAppend(&message,
                    ": the store could not write (disk full or failing?); "
                    "nothing was written");
  }
  // An I/O error because the disk (or the file size limit) is full is a
  // full store, not a transient outage: say so.
  if ((rc & 0xff) == SQLITE_IOERR &&
      (system_errno == ENOSPC || system_errno == EFBIG ||
       system_errno == EDQUOT)) {
    return absl::ResourceExhaustedError(
        absl::StrCat(context, ": the store's disk is full (",
                     std::strerror(system_errno), "); nothing was written"));
  }
  switch (rc & 0xff) {
    case SQLITE_FULL:
      return absl::ResourceExhaustedError(message);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::DataLossError(message);
    case SQLITE_READONLY:
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
      return absl::UnavailableError(message);
    case SQLITE_CONSTRAINT:
      return absl::AlreadyExistsError(message);
    default:
      return absl::InternalError(message);
  }
}

SqliteStatement::~SqliteStatement() {
  if (stmt_ == nullptr) return;
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

void SqliteStatement::BindInt64(int index, int64_t value) {
  sqlite3_bind_int64(stmt_, index, value);
}

void SqliteStatement::BindText(int index, absl::string_view value) {
  sqlite3_bind_text64(stmt_, index, value.data(), value.size(),
                      SQLITE_TRANSIENT, SQLITE_UTF8);
}

void SqliteStatement::BindBlob(int index, absl::string_view value) {
  // A zero-length blob must still be a blob, not NULL: pass a valid pointer.
  sqlite3_bind_blob64(stmt_, index, value.empty() ? "" : value.data(),
                      value.size(), SQLITE_TRANSIENT);
}

void SqliteStatement::BindNull(int index) { sqlite3_bind_null(stmt_, index); }

absl::StatusOr<bool> SqliteStatement::Step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return SqliteStatus(rc, sqlite3_sql(stmt_), sqlite3_errmsg(db_),
                      sqlite3_system_errno(db_));
}

absl::Status SqliteStatement::Run() {
  LRTUNE_ASSIGN_OR_RETURN(bool row, Step());
  (void)row;
  return absl::OkStatus();
}

int64_t SqliteStatement::ColumnInt64(int column) const {
  return sqlite3_column_int64(stmt_, column);
}

std::string SqliteStatement::ColumnText(int column) const {
  const unsigned char* text = sqlite3_column_text(stmt_, column);
  if (text == nullptr) return "";
  return std::string(reinterpret_cast<const char*>(text),
                     sqlite3_column_bytes(stmt_, column));
}

std::string SqliteStatement::ColumnBlob(int column) const {
  const void* blob = sqlite3_column_blob(stmt_, column);
  if (blob == nullptr) return "";
  return std::string(static_cast<const char*>(blob),
                     sqlite3_column_bytes(stmt_, column));
}

bool SqliteStatement::ColumnIsNull(int column) const {
  return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

absl::StatusOr<std::unique_ptr<SqliteDb>> SqliteDb::Open(
    const std::string& path) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(
      path.c_str(), &db,
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
      nullptr);
  if (rc != SQLITE_OK) {
    absl::Status status =
        SqliteStatus(rc, absl::StrCat("opening database '", path, "'"),
                     db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    sqlite3_close(db);
    return status;
  }
  std::unique_ptr<SqliteDb> owned(new SqliteDb(db, path));
  // SQLite silently falls back to read-only when the OS refuses write access;
  // the store cannot acknowledge anything then, so say so at once.
  if (sqlite3_db_readonly(db, "main") == 1) {
    return absl::UnavailableError(
        absl::StrCat("database '", path,
                     "' is read-only: the store needs write access to the "
                     "file and its directory"));
  }
  sqlite3_extended_result_codes(db, 1);
  return owned;
}

SqliteDb::~SqliteDb() {
  for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
  sqlite3_close(db_);
}

absl::Status SqliteDb::Exec(absl::string_view sql) {
  std::string owned(sql);
  char* error = nullptr;
  int rc = sqlite3_exec(db_, owned.c_str(), nullptr, nullptr, &error);
  if (rc == SQLITE_OK) return absl::OkStatus();
  absl::Status status =
      SqliteStatus(rc, owned, error != nullptr ? error : sqlite3_errmsg(db_),
                   sqlite3_system_errno(db_));
  sqlite3_free(error);
  return status;
}

absl::StatusOr<int64_t> SqliteDb::QueryInt64(absl::string_view sql) {
  LRTUNE_ASSIGN_OR_RETURN(SqliteStatement st, Prepare(sql));
  LRTUNE_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return absl::InternalError(absl::StrCat(sql, ": no row"));
  return st.ColumnInt64(0);
}

absl::StatusOr<SqliteStatement> SqliteDb::Prepare(absl::string_view sql) {
  auto it = cache_.find(sql);
  if (it != cache_.end()) return SqliteStatement(it->second, db_);
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) {
    return SqliteStatus(rc, absl::StrCat("preparing ", sql),
                        sqlite3_errmsg(db_));
  }
  cache_.emplace(std::string(sql), stmt);
  return SqliteStatement(stmt, db_);
}

int64_t SqliteDb::Changes() const { return sqlite3_changes64(db_); }

absl::StatusOr<SqliteTransaction> SqliteTransaction::Begin(SqliteDb* db) {
  LRTUNE_RETURN_IF_ERROR(db->Exec("BEGIN IMMEDIATE"));
  return SqliteTransaction(db);
}

SqliteTransaction::~SqliteTransaction() {
  if (db_ != nullptr) db_->Exec("ROLLBACK").IgnoreError();
}

absl::Status SqliteTransaction::Commit() {
  SqliteDb* db = std::exchange(db_, nullptr);
  absl::Status status = db->Exec("COMMIT");
  // A COMMIT that fails (disk full, I/O error) can leave the transaction
  // open; roll it back so the connection is usable for the next call.
  if (!status.ok()) db->Exec("ROLLBACK").IgnoreError();
  return status;
}

}  // namespace lrtune::server
