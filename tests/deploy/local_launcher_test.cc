// `envtune train`'s `launch:` section: keys, defaults, and errors that name the key.
#include "deploy/local_launcher.h"

#include <cstdio>
#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace envtune {
namespace {

std::string WriteConfig(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path) << text;
  return path;
}

TEST(LaunchOptionsTest, ReadsTheLaunchSectionAndLeavesOtherSectionsToTheRoles) {
  LaunchOptions options;
  options.config_path = WriteConfig("launch_ok.yaml", R"(
launch: {env_servers: 3, actors: 1, run_dir: /tmp/x, warm_start: sft, max_wall_s: 60}
learner: {anything: 1}
)");
  options.overrides = {"launch.actors=4"};
  ASSERT_TRUE(ReadLaunchOptions(options).ok());
  EXPECT_EQ(options.env_servers, 3);
  EXPECT_EQ(options.actors, 4);
  EXPECT_EQ(options.run_dir, "/tmp/x");
  EXPECT_EQ(options.warm_start, "sft");
  EXPECT_EQ(options.max_wall, absl::Seconds(60));
}

TEST(LaunchOptionsTest, BadValuesAndUnknownKeysNameTheKey) {
  struct Case {
    const char* yaml;
    const char* key;
  };
  for (const Case& c : {Case{"launch: {warm_start: rl}", "launch.warm_start"},
                        Case{"launch: {actors: 0}", "launch.actors"},
                        Case{"launch: {env_servers: 0}", "launch.env_servers"},
                        Case{"launch: {actorz: 2}", "launch.actorz"}}) {
    LaunchOptions options;
    options.config_path = WriteConfig("launch_bad.yaml", c.yaml);
    absl::Status s = ReadLaunchOptions(options);
    EXPECT_FALSE(s.ok()) << c.yaml;
    EXPECT_NE(s.message().find(c.key), std::string::npos) << s.message();
  }
}

TEST(LaunchOptionsTest, TheShippedDefaultIsValid) {
  const char* src = std::getenv("ENVTUNE_SOURCE_DIR");
  LaunchOptions options;
  options.config_path = std::string(src != nullptr ? src : ".") + "/configs/tiny-cpu.yaml";
  absl::Status s = ReadLaunchOptions(options);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(options.warm_start, "none");
}

}  // namespace
}  // namespace envtune
