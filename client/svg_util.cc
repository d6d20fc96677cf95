// The SVG pieces shared by the CLI's figures.
#include "client/svg_util.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace lrtune::svg {

std::string Escape(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        // XML 1.0 forbids most control characters even escaped.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n') {
          out += ' ';
        } else {
          out += c;
        }
    }
  }
  return out;
}

std::string Number(double v) { return absl::StrFormat("%.3g", v); }

const char* Colour(int i) {
  static const char* kColours[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                   "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                                   "#bcbd22", "#17becf"};
  return kColours[(i % 10 + 10) % 10];
}

std::string Header(double width, double height) {
  return absl::StrFormat(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" "
      "height=\"%g\" viewBox=\"0 0 %g %g\" font-family=\"sans-serif\" "
      "font-size=\"12\">\n"
      "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
      width, height, width, height);
}

std::string Axes(const Frame& f) {
  return absl::StrFormat(
      "<g id=\"axes\" stroke=\"#444\"><line x1=\"%g\" y1=\"%g\" x2=\"%g\" "
      "y2=\"%g\"/><line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\"/></g>\n",
      f.left, f.bottom(), f.right(), f.bottom(), f.left, f.top, f.left,
      f.bottom());
}

std::string AxisTitles(const Frame& f, double figure_height,
                       absl::string_view x_title, absl::string_view y_title) {
  const double mid_y = f.top + f.height / 2;
  return absl::StrFormat(
      "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">%s</text>\n<text "
      "x=\"16\" y=\"%g\" text-anchor=\"middle\" transform=\"rotate(-90 16 "
      "%g)\">%s</text>\n",
      f.left + f.width / 2, figure_height - 12, Escape(x_title), mid_y, mid_y,
      Escape(y_title));
}

}  // namespace lrtune::svg
