// Unit tests of the TwitterAPI (posting) sandbox against ../shared/bfcl/spec/posting_api.md:
// every method's success and error branches, JSON vs Python-repr results, int tweet keys, the
// shared default `mentions` list, Python type-misuse texts and hostile-input limits.
#include "envserver/apis/posting_api.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "envserver/apis/apis.h"
#include "envserver/apis/social_pyops.h"
#include "envserver/pyvalue.h"
#include "envserver/tool_api.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/envserver/api_test_util.h"

namespace envtune {
namespace {

using namespace api_test;  // NOLINT(build/namespaces)
constexpr char kScenario[] = R"({
  "username": "john", "password": "pw", "authenticated": true,
  "tweets": {"0": {"id": 0, "username": "john", "content": "Hello World", "tags": ["#Test"],
                   "mentions": []},
             "1": {"id": 1, "username": "amy", "content": "It's a \"test\" é\n", "tags": ["#A"],
                   "mentions": []}},
  "comments": {"1": [{"username": "amy", "comment": "old"}]},
  "tweet_counter": 2})";

class TwitterApiTest : public ConcreteApiTest<TwitterApi> {
 protected:
  const PyValue& State(const char* key) { return *(state_ = api_.PublicState()).dict().Find(key); }
  PyValue state_;
};

TEST_F(TwitterApiTest, RegisteredAndDefaultState) {
  absl::StatusOr<std::unique_ptr<ToolApi>> api = CreateToolApi("TwitterAPI");
  ASSERT_TRUE(api.ok());
  EXPECT_EQ((*api)->ClassName(), "TwitterAPI");
  EXPECT_EQ((*api)->MethodNames().size(), 14u);
  Load("{}");
  EXPECT_EQ(api_.PublicState().JsonDumps(),
            R"({"username": "john", "password": "john123", "authenticated": false, )"
            R"("tweets": {}, "comments": {}, "retweets": {}, "following_list": ["alice", )"
            R"("bob"], "tweet_counter": 0})");
}

TEST_F(TwitterApiTest, TweetKeysBecomeIntsCommentKeysStayStrings) {
  Load(kScenario);
  const PyValue& tweets = State("tweets");
  ASSERT_EQ(tweets.dict().size(), 2u);
  EXPECT_TRUE(tweets.dict().entries()[0].first.is_int());
  const PyValue& comments = State("comments");
  EXPECT_TRUE(comments.dict().entries()[0].first.is_str());
}

TEST_F(TwitterApiTest, Authenticate) {
  Load(R"({"username": "u", "password": "p"})");
  EXPECT_EQ(Call("posting_get_login_status"), R"({"login_status": false})");
  EXPECT_EQ(Call("authenticate_twitter", Kw({{"username", S("u")}, {"password", S("x")}})),
            R"({"authentication_status": false})");
  EXPECT_EQ(Call("authenticate_twitter", Kw({{"username", S("u")}, {"password", S("p")}})),
            R"({"authentication_status": true})");
  EXPECT_EQ(Call("posting_get_login_status"), R"({"login_status": true})");
  // A failed attempt does not log out.
  EXPECT_EQ(Call("authenticate_twitter", Pos({S("u"), S("bad")})),
            R"({"authentication_status": false})");
  EXPECT_EQ(Call("posting_get_login_status"), R"({"login_status": true})");
}

TEST_F(TwitterApiTest, NotAuthenticatedErrors) {
  Load("{}");
  EXPECT_EQ(Call("post_tweet", Pos({S("x")})),
            R"({"error": "User not authenticated. Please authenticate before posting."})");
  EXPECT_EQ(Call("retweet", Pos({I(0)})),
            R"({"error": "User not authenticated. Please authenticate before retweeting."})");
  EXPECT_EQ(Call("comment", Pos({I(0), S("c")})),
            R"({"error": "User not authenticated. Please authenticate before commenting."})");
  EXPECT_EQ(Call("follow_user", Pos({S("x")})),
            R"({"error": "User not authenticated. Please authenticate before following."})");
  EXPECT_EQ(Call("list_all_following"),
            R"({"error": "User not authenticated. Please authenticate before listing )"
            R"(following."})");
  EXPECT_EQ(Call("unfollow_user", Pos({S("x")})),
            R"({"error": "User not authenticated. Please authenticate before unfollowing."})");
}

TEST_F(TwitterApiTest, PostTweetAndGetTweet) {
  Load(kScenario);
  EXPECT_EQ(Call("post_tweet",
                 Kw({{"content", S("New")}, {"tags", L({S("#t")})}, {"mentions", L({S("@m")})}})),
            R"({"id": 2, "username": "john", "content": "New", "tags": ["#t"], )"
            R"("mentions": ["@m"]})");
  EXPECT_EQ(State("tweet_counter").as_int(), 3);
  EXPECT_EQ(Call("get_tweet", Kw({{"tweet_id", I(2)}})),
            R"({"id": 2, "username": "john", "content": "New", "tags": ["#t"], )"
            R"("mentions": ["@m"]})");
  EXPECT_EQ(Call("get_tweet", Kw({{"tweet_id", PyValue::Float(2.0)}})),
            Call("get_tweet", Kw({{"tweet_id", I(2)}})));
  EXPECT_EQ(Call("get_tweet", Kw({{"tweet_id", S("2")}})),
            R"({"error": "Tweet with ID 2 not found."})");
  EXPECT_EQ(Call("get_tweet", Kw({{"tweet_id", L({})}})),
            "Error during execution: unhashable type: 'list'");
}

TEST_F(TwitterApiTest, PostTweetOverwritesExistingKeyInPlace) {
  Load(R"({"authenticated": true, "tweets": {"0": {"id": 0, "username": "x", "content": "a",
           "tags": [], "mentions": []}, "1": {"id": 1, "username": "x", "content": "b",
           "tags": [], "mentions": []}}, "tweet_counter": 0})");
  Call("post_tweet", Pos({S("new")}));
  const PyValue& tweets = State("tweets");
  EXPECT_EQ(tweets.dict().size(), 2u);
  EXPECT_EQ(tweets.dict().entries()[0].second.dict().Find("content")->as_str(), "new");
}

TEST_F(TwitterApiTest, ListResultsUsePythonRepr) {
  Load(kScenario);
  EXPECT_EQ(Call("get_user_tweets", Pos({S("amy")})),
            "[{'id': 1, 'username': 'amy', 'content': 'It\\'s a \"test\" é\\n', 'tags': "
            "['#A'], 'mentions': []}]");
  EXPECT_EQ(Call("get_user_tweets", Pos({S("nobody")})), "[]");
  EXPECT_EQ(Call("search_tweets", Pos({S("TEST")})), Call("get_user_tweets", Pos({S("amy")})));
  EXPECT_THAT(Call("search_tweets", Pos({S("#test")})), ::testing::HasSubstr("'id': 0"));
  EXPECT_EQ(Call("search_tweets", Pos({S("#tes")})), "[]");
  EXPECT_EQ(Call("search_tweets", Pos({I(1)})),
            "Error during execution: 'int' object has no attribute 'lower'");
  Load(R"({"tweets": {}})");
  EXPECT_EQ(Call("search_tweets", Pos({I(1)})), "[]");  // keyword.lower() never evaluated
}

TEST_F(TwitterApiTest, CommentsAndGetTweetComments) {
  Load(kScenario);
  EXPECT_EQ(Call("get_tweet_comments", Pos({I(1)})), "[]");  // scenario key "1" is a string
  EXPECT_EQ(Call("comment", Kw({{"tweet_id", I(1)}, {"comment_content", S("nice")}})),
            R"({"comment_status": "Comment added successfully"})");
  EXPECT_EQ(Call("get_tweet_comments", Pos({I(1)})), "[{'username': 'john', 'content': 'nice'}]");
  EXPECT_EQ(State("comments").JsonDumps(),
            R"({"1": [{"username": "amy", "comment": "old"}], "1": [{"username": "john", )"
            R"("content": "nice"}]})");
  EXPECT_EQ(Call("comment", Pos({I(7), S("x")})), R"({"error": "Tweet with ID 7 not found."})");
  EXPECT_EQ(Call("get_tweet_comments", Pos({I(7)})), R"({"error": "Tweet with ID 7 not found."})");
}

TEST_F(TwitterApiTest, RetweetAndStats) {
  Load(kScenario);
  EXPECT_EQ(Call("retweet", Pos({I(1)})), R"({"retweet_status": "Successfully retweeted"})");
  EXPECT_EQ(Call("retweet", Pos({PyValue::Bool(true)})),
            R"({"retweet_status": "Already retweeted"})");
  EXPECT_EQ(Call("retweet", Pos({I(5)})), R"({"error": "Tweet with ID 5 not found."})");
  EXPECT_EQ(State("retweets").JsonDumps(), R"({"john": [1]})");
  EXPECT_EQ(Call("get_user_stats", Pos({S("john")})),
            R"({"tweet_count": 1, "following_count": 2, "retweet_count": 1})");
  EXPECT_EQ(Call("get_user_stats", Pos({S("amy")})),
            R"({"tweet_count": 1, "following_count": 0, "retweet_count": 0})");
  EXPECT_EQ(Call("get_user_stats", Pos({L({})})),
            "Error during execution: unhashable type: 'list'");
}

TEST_F(TwitterApiTest, FollowListUnfollow) {
  Load(kScenario);
  EXPECT_EQ(Call("follow_user", Pos({S("alice")})), R"({"follow_status": false})");
  EXPECT_EQ(Call("follow_user", Pos({S("carl")})), R"({"follow_status": true})");
  EXPECT_EQ(Call("list_all_following"), R"({"following_list": ["alice", "bob", "carl"]})");
  EXPECT_EQ(Call("unfollow_user", Pos({S("bob")})), R"({"unfollow_status": true})");
  EXPECT_EQ(Call("unfollow_user", Pos({S("bob")})), R"({"unfollow_status": false})");
  EXPECT_EQ(Call("list_all_following"), R"({"following_list": ["alice", "carl"]})");
}

TEST_F(TwitterApiTest, MentionExtendsInPlaceWithoutAuth) {
  Load(R"({"tweets": {"0": {"id": 0, "username": "a", "content": "c", "tags": [],
           "mentions": ["@x"]}}, "tweet_counter": 1})");
  EXPECT_EQ(Call("mention", Pos({I(0), L({S("@y"), S("@x")})})),
            R"({"mention_status": "Users mentioned successfully"})");
  EXPECT_EQ(Call("get_tweet", Pos({I(0)})),
            R"({"id": 0, "username": "a", "content": "c", "tags": [], "mentions": ["@x", "@y", )"
            R"("@x"]})");
  Call("mention", Pos({I(0), S("ab")}));  // a string extends character by character
  EXPECT_THAT(Call("get_tweet", Pos({I(0)})), ::testing::HasSubstr(R"("@x", "a", "b"])"));
  EXPECT_EQ(Call("mention", Pos({I(0), I(3)})),
            "Error during execution: 'int' object is not "
            "iterable");
  EXPECT_EQ(Call("mention", Pos({I(9), L({})})), R"({"error": "Tweet with ID 9 not found."})");
}

TEST_F(TwitterApiTest, SharedDefaultMentionsList) {
  Load(R"({"authenticated": true})");
  Call("post_tweet", Pos({S("first")}));
  Call("post_tweet", Kw({{"content", S("second")}, {"tags", L({S("#t")})}}));
  Call("post_tweet", Kw({{"content", S("own")}, {"mentions", L({})}}));
  Call("mention", Pos({I(0), L({S("@m1")})}));
  EXPECT_THAT(Call("get_tweet", Pos({I(1)})), ::testing::HasSubstr(R"("mentions": ["@m1"])"));
  EXPECT_THAT(Call("get_tweet", Pos({I(2)})), ::testing::HasSubstr(R"("mentions": [])"));
  EXPECT_THAT(Call("post_tweet", Pos({S("later")})),
              ::testing::HasSubstr(R"("mentions": ["@m1"])"));
  // A fresh episode starts with a fresh default list.
  Load(R"({"authenticated": true})");
  EXPECT_THAT(Call("post_tweet", Pos({S("x")})), ::testing::HasSubstr(R"("mentions": [])"));
}

TEST_F(TwitterApiTest, MalformedScenarioContainersFollowPythonSemantics) {
  // comments as a list: `0 in [[1]]` is False, so comments[0] = [] replaces index 0.
  Load(R"({"authenticated": true, "tweet_counter": 1, "comments": [[1]],
           "tweets": {"0": {"id": 0, "username": "john", "content": "x", "tags": [],
                            "mentions": []}}})");
  EXPECT_EQ(Call("comment", Pos({I(0), S("c")})),
            R"({"comment_status": "Comment added successfully"})");
  EXPECT_EQ(State("comments").JsonDumps(), R"([[{"username": "john", "content": "c"}]])");
  // `0 in comments` is still False: index 0 is reset to [] and gets the new comment.
  EXPECT_EQ(Call("comment", Pos({I(0), S("c")})),
            R"({"comment_status": "Comment added successfully"})");
  EXPECT_EQ(State("comments").JsonDumps(), R"([[{"username": "john", "content": "c"}]])");
  Load(R"({"authenticated": true, "tweet_counter": 1, "retweets": 5,
           "tweets": {"0": {"id": 0, "username": "john", "content": "x", "tags": [],
                            "mentions": []}}})");
  EXPECT_EQ(Call("retweet", Pos({I(0)})),
            "Error during execution: argument of type 'int' is not iterable");
}

TEST_F(TwitterApiTest, ArgumentBindingErrors) {
  Load("{}");
  EXPECT_EQ(Call("post_tweet", Pos({S("a"), L({}), L({}), S("x")})),
            "Error during execution: TwitterAPI.post_tweet() takes from 2 to 4 positional "
            "arguments but 5 were given");
  EXPECT_EQ(Call("comment", {}),
            "Error during execution: TwitterAPI.comment() missing 2 required positional "
            "arguments: 'tweet_id' and 'comment_content'");
  EXPECT_EQ(Call("no_such"),
            "Error during execution: 'TwitterAPI' object has no attribute "
            "'no_such'");
}

TEST_F(TwitterApiTest, HostileInputLimits) {
  Load(kScenario);
  std::string huge(social::kMaxStoredValueBytes + 1, 'x');
  EXPECT_EQ(Call("post_tweet", Pos({PyValue::Str(huge)})),
            R"({"error": "Tweet is too large (limit 16384 bytes)."})");
  EXPECT_EQ(Call("comment", Pos({I(0), PyValue::Str(huge)})),
            R"({"error": "Comment is too large (limit 16384 bytes)."})");
  EXPECT_EQ(Call("follow_user", Pos({PyValue::Str(huge)})),
            R"({"error": "User name is too large (limit 16384 bytes)."})");
  EXPECT_EQ(State("tweet_counter").as_int(), 2);
  for (size_t i = 2; i < social::kMaxCollectionEntries; ++i) {
    ASSERT_THAT(Call("post_tweet", Pos({S("t")})), ::testing::HasSubstr("\"id\""));
  }
  EXPECT_EQ(Call("post_tweet", Pos({S("t")})), R"({"error": "Too many tweets (limit 1000)."})");
  PyList many(social::kMaxCollectionEntries + 1, S("@a"));
  EXPECT_EQ(Call("mention", Pos({I(0), PyValue::List(many)})),
            R"({"error": "Too many mentions on this tweet (limit 1000)."})");
}

}  // namespace
}  // namespace envtune
