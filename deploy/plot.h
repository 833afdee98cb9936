// A small SVG line chart for the end-of-run report: one polyline per series over learner steps,
// with axes, ticks and a legend. Output is a standalone SVG document.
#ifndef ENVTUNE_DEPLOY_PLOT_H_
#define ENVTUNE_DEPLOY_PLOT_H_

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace envtune {

using Series = std::vector<std::pair<double, double>>;  // (step, value)

// `text` with <, >, & and " escaped for XML/HTML text and attribute values.
std::string EscapeXml(const std::string& text);

// `stage_starts` marks the first step of each stage with a vertical line labelled "stage N".
std::string RenderLineChartSvg(const std::string& title, const std::map<std::string, Series>& series,
                               const std::vector<std::pair<double, int>>& stage_starts = {});

}  // namespace envtune

#endif  // ENVTUNE_DEPLOY_PLOT_H_
