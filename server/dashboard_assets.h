// The dashboard page's own files (server/dashboard/: index.html, app.js,
// app.css), compiled into the binary by server/dashboard/embed.cmake so
// that lrtune-server and `lrtune range-test --ui` serve them with nothing
// installed beside them. Chart.js is not among them: Debian ships it
// (dashboard.h reads it at start).
//
//   const DashboardAsset* js = FindDashboardAsset("app.js");
//
// Thread-safe: constant data.
#ifndef LRTUNE_SERVER_DASHBOARD_ASSETS_H_
#define LRTUNE_SERVER_DASHBOARD_ASSETS_H_

#include "absl/strings/string_view.h"

namespace lrtune::server {

struct DashboardAsset {
  absl::string_view name;          // "app.js"
  absl::string_view content_type;  // "text/javascript; charset=utf-8"
  absl::string_view content;
};

// The file called `name`, or nullptr.
const DashboardAsset* FindDashboardAsset(absl::string_view name);

}  // namespace lrtune::server

#endif  // LRTUNE_SERVER_DASHBOARD_ASSETS_H_
