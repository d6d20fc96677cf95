// Internal: the pieces the CLI's SVG figures share (range_test_svg.cc,
// grid_plot.cc): the document header, escaping, numbers, the palette, the
// axes and their labels. Not part of any public contract.
//
//   std::string svg = svg::Header(800, 480);
//   const svg::Frame f{70, 40, 710, 390};
//   svg += svg::Axes(f);
//   svg += svg::AxisTitles(f, 800, 480, "step", "training loss");
//   absl::StrAppend(&svg, "<text>", svg::Escape(label), "</text></svg>\n");
//
// Pure functions; thread-safe.
#ifndef LRTUNE_CLIENT_SVG_UTIL_H_
#define LRTUNE_CLIENT_SVG_UTIL_H_

#include <string>

#include "absl/strings/string_view.h"

namespace lrtune::svg {

// The plot area inside the figure, in SVG user units.
struct Frame {
  double left = 0, top = 0, width = 0, height = 0;
  double right() const { return left + width; }
  double bottom() const { return top + height; }
};

// `text` safe inside an element or a double-quoted attribute (& < > " ').
std::string Escape(absl::string_view text);

// Three significant digits ("0.0097", "1.2e+03").
std::string Number(double v);

// The Tableau 10 palette, cycling: series i's colour ("#1f77b4", ...).
const char* Colour(int i);

// The XML declaration, the <svg> element opened (w x h, sans-serif 12) and
// a white background.
std::string Header(double width, double height);

// The two axis lines along the frame's left and bottom edges (group "axes").
std::string Axes(const Frame& frame);

// The x axis' title centred below the frame and the y axis' title turned
// along the left edge, in a figure `figure_height` tall.
std::string AxisTitles(const Frame& frame, double figure_height,
                       absl::string_view x_title, absl::string_view y_title);

}  // namespace lrtune::svg

#endif  // LRTUNE_CLIENT_SVG_UTIL_H_
