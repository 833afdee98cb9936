#include "deploy/process.h"

#include <filesystem>

#include "absl/time/clock.h"
#include "deploy/plot.h"
#include "gtest/gtest.h"

namespace envtune {
namespace {

std::string TempLog(const std::string& name) {
  std::string dir = ::testing::TempDir() + "/envtune_process_test";
  std::filesystem::create_directories(dir);
  std::string path = dir + "/" + name + ".log";
  std::filesystem::remove(path);
  return path;
}

TEST(ChildProcessTest, ReportsListeningAddressAndStopsWithSigterm) {
  auto child = ChildProcess::Spawn(
      "server", {"/bin/sh", "-c", "echo starting; echo 'server listening on 127.0.0.1:4321'; exec sleep 30"},
      TempLog("server"));
  ASSERT_TRUE(child.ok()) << child.status();
  auto address = child->WaitForListeningAddress(absl::Seconds(10));
  ASSERT_TRUE(address.ok()) << address.status();
  EXPECT_EQ(*address, "127.0.0.1:4321");
  EXPECT_FALSE(child->PollExit().has_value());
  EXPECT_EQ(child->Terminate(absl::Seconds(5)), 128 + 15);  // killed by SIGTERM
  EXPECT_EQ(child->PollExit(), 128 + 15);
}

TEST(ChildProcessTest, ListeningLinesOfAnEarlierRunInTheSameLogAreIgnored) {
  const std::string log = TempLog("rerun");
  auto first = ChildProcess::Spawn("server", {"/bin/sh", "-c", "echo 'server listening on 127.0.0.1:1111'"}, log);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(first->WaitForListeningAddress(absl::Seconds(10)).ok());
  while (!first->PollExit().has_value()) absl::SleepFor(absl::Milliseconds(10));
  // A restart (or a second `envtune train` in the same run_dir) appends to the same log.
  auto second = ChildProcess::Spawn(
      "server", {"/bin/sh", "-c", "sleep 0.2; echo 'server listening on 127.0.0.1:2222'; exec sleep 30"}, log);
  ASSERT_TRUE(second.ok()) << second.status();
  auto address = second->WaitForListeningAddress(absl::Seconds(10));
  ASSERT_TRUE(address.ok()) << address.status();
  EXPECT_EQ(*address, "127.0.0.1:2222");
  second->Terminate(absl::Seconds(5));
}

TEST(ChildProcessTest, EarlyExitIsReportedWithTheLogTail) {
  auto child = ChildProcess::Spawn("crasher", {"/bin/sh", "-c", "echo 'bad config key x'; exit 2"},
                                   TempLog("crasher"));
  ASSERT_TRUE(child.ok());
  auto address = child->WaitForListeningAddress(absl::Seconds(10));
  ASSERT_FALSE(address.ok());
  std::string message(address.status().message());
  EXPECT_NE(message.find("crasher exited with status 2"), std::string::npos) << message;
  EXPECT_NE(message.find("bad config key x"), std::string::npos) << message;
}

TEST(ChildProcessTest, SilentChildTimesOutAndStubbornChildIsKilled) {
  auto child = ChildProcess::Spawn("mute", {"/bin/sh", "-c", "trap '' TERM; sleep 30"},
                                   TempLog("mute"));
  ASSERT_TRUE(child.ok());
  auto address = child->WaitForListeningAddress(absl::Milliseconds(300));
  EXPECT_EQ(address.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(child->Terminate(absl::Milliseconds(300)), 128 + 9);  // SIGKILL after the grace
}

TEST(ChildProcessTest, MissingExecutableIsAnError) {
  auto child = ChildProcess::Spawn("ghost", {"/nonexistent/binary"}, TempLog("ghost"));
  ASSERT_FALSE(child.ok());
  std::string message(child.status().message());
  EXPECT_NE(message.find("cannot start ghost (/nonexistent/binary)"), std::string::npos) << message;
}

TEST(PlotTest, RendersOnePolylinePerSeriesWithLegendAndStageMarkers) {
  std::map<std::string, Series> series{{"stage2/reward", {{1, 0.1}, {2, 0.3}, {3, 0.5}}},
                                       {"eval/accuracy", {{2, 0.25}}}};
  std::string svg = RenderLineChartSvg("title <&>", series, {{0, 1}, {2, 2}});
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  size_t polylines = 0;
  for (size_t pos = svg.find("<polyline"); pos != std::string::npos;
       pos = svg.find("<polyline", pos + 1)) {
    ++polylines;
  }
  EXPECT_EQ(polylines, 2u);
  EXPECT_NE(svg.find("stage2/reward"), std::string::npos);
  EXPECT_NE(svg.find("stage 2"), std::string::npos);
  EXPECT_NE(svg.find("title &lt;&amp;&gt;"), std::string::npos);
}

}  // namespace
}  // namespace envtune
