#include "envserver/apis/posting_api.h"

#include <cmath>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "envserver/apis/apis.h"
#include "envserver/apis/social_pyops.h"

namespace envtune {
namespace {

using social::ErrorDict;
using social::MakeDict;
using social::RaiseFrom;

std::string NotAuthenticated(std::string_view action) {
  return absl::StrCat("User not authenticated. Please authenticate before ", std::string(action),
                      ".");
}

PyValue TweetNotFound(const PyValue& tweet_id) {
  return ErrorDict(absl::StrCat("Tweet with ID ", tweet_id.Str(), " not found."));
}

// Python int(key) for a scenario tweet key; nullopt where Python would raise ValueError.
std::optional<PyValue> PyIntOf(const PyValue& key) {
  if (key.is_int()) return key;
  if (key.is_bool()) return PyValue::Int(key.as_int());
  if (key.is_float()) {
    double d = key.as_float();
    if (!std::isfinite(d) || std::fabs(d) >= 9.2e18) return std::nullopt;
    return PyValue::Int(static_cast<int64_t>(d));
  }
  if (!key.is_str()) return std::nullopt;
  absl::string_view s = absl::StripAsciiWhitespace(key.as_str());
  bool negative = false;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s.empty()) return std::nullopt;
  int64_t value = 0;
  bool prev_digit = false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '_') {
      // Underscores only between digits.
      if (!prev_digit || i + 1 == s.size()) return std::nullopt;
      prev_digit = false;
      continue;
    }
    if (c < '0' || c > '9') return std::nullopt;
    if (value > (INT64_MAX - (c - '0')) / 10) return std::nullopt;  // beyond PyValue's range
    value = value * 10 + (c - '0');
    prev_digit = true;
  }
  return PyValue::Int(negative ? -value : value);
}

// tweet[field] for a stored tweet (KeyError / TypeError texts as Python).
absl::StatusOr<PyValue> TweetField(const PyValue& tweet, std::string_view field) {
  PyValue copy = tweet;
  absl::StatusOr<PyValue*> v = social::PyGetItem(copy, field);
  if (!v.ok()) return v.status();
  return **v;
}

ParamSpec Req(const char* name) { return ParamSpec{name, std::nullopt}; }
ParamSpec Opt(const char* name, PyValue default_value) {
  return ParamSpec{name, std::move(default_value)};
}

}  // namespace

TwitterApi::TwitterApi() { LoadScenario(PyValue::Dict(), false); }

const TwitterApi::MethodTable& TwitterApi::Methods() {
  static const auto* table = new MethodTable{
      {"authenticate_twitter",
       {Req("username"), Req("password")},
       &TwitterApi::AuthenticateTwitter},
      {"posting_get_login_status", {}, &TwitterApi::PostingGetLoginStatus},
      {"post_tweet",
       {Req("content"), Opt("tags", PyValue::List()), Opt("mentions", PyValue::List())},
       &TwitterApi::PostTweet},
      {"retweet", {Req("tweet_id")}, &TwitterApi::Retweet},
      {"comment", {Req("tweet_id"), Req("comment_content")}, &TwitterApi::Comment},
      {"mention", {Req("tweet_id"), Req("mentioned_usernames")}, &TwitterApi::Mention},
      {"follow_user", {Req("username_to_follow")}, &TwitterApi::FollowUser},
      {"list_all_following", {}, &TwitterApi::ListAllFollowing},
      {"unfollow_user", {Req("username_to_unfollow")}, &TwitterApi::UnfollowUser},
      {"get_tweet", {Req("tweet_id")}, &TwitterApi::GetTweet},
      {"get_user_tweets", {Req("username")}, &TwitterApi::GetUserTweets},
      {"search_tweets", {Req("keyword")}, &TwitterApi::SearchTweets},
      {"get_tweet_comments", {Req("tweet_id")}, &TwitterApi::GetTweetComments},
      {"get_user_stats", {Req("username")}, &TwitterApi::GetUserStats},
  };
  return *table;
}

CallOutcome TwitterApi::Invoke(std::string_view method, const PyArgs& args) {
  mentions_omitted_ = false;
  if (method == "post_tweet") {
    bool given = args.positional.size() >= 3;
    for (const auto& [name, value] : args.keywords) given = given || name == "mentions";
    mentions_omitted_ = !given;
  }
  CallOutcome outcome = ToolApiBase<TwitterApi>::Invoke(method, args);
  mentions_omitted_ = false;
  return outcome;
}

void TwitterApi::LoadScenario(const PyValue& scenario, bool /*long_context*/) {
  static const PyDict* kEmpty = new PyDict();
  const PyDict& s = scenario.is_dict() ? scenario.dict() : *kEmpty;
  auto get = [&s](std::string_view key, PyValue fallback) {
    const PyValue* v = s.Find(key);
    return v != nullptr ? *v : fallback;
  };
  username_ = get("username", PyValue::Str("john"));
  password_ = get("password", PyValue::Str("john123"));
  authenticated_ = get("authenticated", PyValue::Bool(false));
  // {int(k): v for k, v in tweets.items()}. A key int() rejects (Python would fail the load;
  // absent from BFCL's data) is kept as is; a non-dict `tweets` becomes {}.
  PyValue tweets = get("tweets", PyValue::Dict());
  PyDict converted;
  if (tweets.is_dict()) {
    for (const auto& [key, value] : tweets.dict()) {
      std::optional<PyValue> int_key = PyIntOf(key);
      converted.Set(int_key.has_value() ? *int_key : key, value);
    }
  }
  tweets_ = PyValue::Dict(std::move(converted));
  comments_ = get("comments", PyValue::Dict());
  retweets_ = get("retweets", PyValue::Dict());
  following_list_ =
      get("following_list", PyValue::List({PyValue::Str("alice"), PyValue::Str("bob")}));
  tweet_counter_ = get("tweet_counter", PyValue::Int(0));
  default_mentions_.clear();
  aliased_keys_.clear();
}

PyValue TwitterApi::PublicState() const {
  return MakeDict({{"username", username_},
                   {"password", password_},
                   {"authenticated", authenticated_},
                   {"tweets", tweets_},
                   {"comments", comments_},
                   {"retweets", retweets_},
                   {"following_list", following_list_},
                   {"tweet_counter", tweet_counter_}});
}

bool TwitterApi::IsAliased(const PyValue& key) const {
  for (const PyValue& k : aliased_keys_) {
    if (k == key) return true;
  }
  return false;
}

void TwitterApi::SetAliased(const PyValue& key, bool aliased) {
  for (auto it = aliased_keys_.begin(); it != aliased_keys_.end(); ++it) {
    if (*it == key) {
      if (!aliased) aliased_keys_.erase(it);
      return;
    }
  }
  if (aliased) aliased_keys_.push_back(key);
}

CallOutcome TwitterApi::AuthenticateTwitter(const std::vector<PyValue>& a) {
  if (a[0] == username_ && a[1] == password_) {
    authenticated_ = PyValue::Bool(true);
    return CallOutcome::Return(MakeDict({{"authentication_status", PyValue::Bool(true)}}));
  }
  return CallOutcome::Return(MakeDict({{"authentication_status", PyValue::Bool(false)}}));
}

CallOutcome TwitterApi::PostingGetLoginStatus(const std::vector<PyValue>& /*a*/) {
  return CallOutcome::Return(MakeDict({{"login_status", PyValue::Bool(authenticated_.Truthy())}}));
}

CallOutcome TwitterApi::PostTweet(const std::vector<PyValue>& a) {
  if (!authenticated_.Truthy()) return CallOutcome::Return(ErrorDict(NotAuthenticated("posting")));
  const bool aliased = mentions_omitted_;
  PyValue tweet = MakeDict({{"id", tweet_counter_},
                            {"username", username_},
                            {"content", a[0]},
                            {"tags", a[1]},
                            {"mentions", aliased ? PyValue::List(default_mentions_) : a[2]}});
  absl::Status hashable = social::CheckHashable(tweet_counter_);
  if (!hashable.ok()) return RaiseFrom(hashable);
  // Hostile-input limits (before any state change).
  if (social::ApproxSize(tweet) > social::kMaxStoredValueBytes) {
    return CallOutcome::Return(ErrorDict(social::TooLargeText("Tweet")));
  }
  if (!tweets_.dict().Contains(tweet_counter_) &&
      tweets_.dict().size() >= social::kMaxCollectionEntries) {
    return CallOutcome::Return(ErrorDict(social::TooManyText("tweets")));
  }
  tweets_.dict().Set(tweet_counter_, tweet);
  SetAliased(tweet_counter_, aliased);
  absl::Status counted = social::PyIncrement(tweet_counter_);
  if (!counted.ok()) return RaiseFrom(counted);
  return CallOutcome::Return(std::move(tweet));
}

CallOutcome TwitterApi::Retweet(const std::vector<PyValue>& a) {
  const PyValue& tweet_id = a[0];
  if (!authenticated_.Truthy()) {
    return CallOutcome::Return(ErrorDict(NotAuthenticated("retweeting")));
  }
  absl::StatusOr<bool> found = social::PyContains(tweets_, tweet_id);
  if (!found.ok()) return RaiseFrom(found.status());
  if (!*found) return CallOutcome::Return(TweetNotFound(tweet_id));
  absl::StatusOr<bool> has_user = social::PyContains(retweets_, username_);
  if (!has_user.ok()) return RaiseFrom(has_user.status());
  if (!*has_user) {
    absl::Status created = social::PySetSubscript(retweets_, username_, PyValue::List());
    if (!created.ok()) return RaiseFrom(created);
  }
  PyValue scratch;
  absl::StatusOr<PyValue*> slot = social::PySubscript(retweets_, username_, scratch);
  if (!slot.ok()) return RaiseFrom(slot.status());
  PyValue& list = **slot;
  absl::StatusOr<bool> already = social::PyContains(list, tweet_id);
  if (!already.ok()) return RaiseFrom(already.status());
  if (*already) {
    return CallOutcome::Return(MakeDict({{"retweet_status", PyValue::Str("Already retweeted")}}));
  }
  if (list.is_list() && list.items().size() >= social::kMaxCollectionEntries) {
    return CallOutcome::Return(ErrorDict(social::TooManyText("retweets")));
  }
  absl::Status appended = social::PyAppend(list, tweet_id);
  if (!appended.ok()) return RaiseFrom(appended);
  return CallOutcome::Return(
      MakeDict({{"retweet_status", PyValue::Str("Successfully retweeted")}}));
}

CallOutcome TwitterApi::Comment(const std::vector<PyValue>& a) {
  const PyValue& tweet_id = a[0];
  const PyValue& comment_content = a[1];
  if (!authenticated_.Truthy()) {
    return CallOutcome::Return(ErrorDict(NotAuthenticated("commenting")));
  }
  absl::StatusOr<bool> found = social::PyContains(tweets_, tweet_id);
  if (!found.ok()) return RaiseFrom(found.status());
  if (!*found) return CallOutcome::Return(TweetNotFound(tweet_id));
  absl::StatusOr<bool> has_list = social::PyContains(comments_, tweet_id);
  if (!has_list.ok()) return RaiseFrom(has_list.status());
  // Hostile-input limits (before any state change).
  PyValue entry = MakeDict({{"username", username_}, {"content", comment_content}});
  if (social::ApproxSize(entry) > social::kMaxStoredValueBytes) {
    return CallOutcome::Return(ErrorDict(social::TooLargeText("Comment")));
  }
  if (*has_list && comments_.is_dict()) {
    const PyValue* existing = comments_.dict().Find(tweet_id);
    if (existing != nullptr && existing->is_list() &&
        existing->items().size() >= social::kMaxCollectionEntries) {
      return CallOutcome::Return(ErrorDict(social::TooManyText("comments on this tweet")));
    }
  }
  if (!*has_list) {
    absl::Status created = social::PySetSubscript(comments_, tweet_id, PyValue::List());
    if (!created.ok()) return RaiseFrom(created);
  }
  PyValue scratch;
  absl::StatusOr<PyValue*> slot = social::PySubscript(comments_, tweet_id, scratch);
  if (!slot.ok()) return RaiseFrom(slot.status());
  absl::Status appended = social::PyAppend(**slot, std::move(entry));
  if (!appended.ok()) return RaiseFrom(appended);
  return CallOutcome::Return(
      MakeDict({{"comment_status", PyValue::Str("Comment added successfully")}}));
}

CallOutcome TwitterApi::Mention(const std::vector<PyValue>& a) {
  const PyValue& tweet_id = a[0];
  const PyValue& mentioned = a[1];
  absl::StatusOr<bool> found = social::PyContains(tweets_, tweet_id);
  if (!found.ok()) return RaiseFrom(found.status());
  if (!*found) return CallOutcome::Return(TweetNotFound(tweet_id));
  PyValue& tweet = *tweets_.dict().Find(tweet_id);
  absl::StatusOr<PyValue*> mentions = social::PyGetItem(tweet, "mentions");
  if (!mentions.ok()) return RaiseFrom(mentions.status());
  PyValue& target = **mentions;
  if (!target.is_list()) return RaiseFrom(social::AttributeError(target, "extend"));
  absl::StatusOr<PyList> items = social::PyIterate(mentioned);
  if (!items.ok()) return RaiseFrom(items.status());
  // Hostile-input limits (before any state change).
  if (social::ApproxSize(mentioned) > social::kMaxStoredValueBytes) {
    return CallOutcome::Return(ErrorDict(social::TooLargeText("Mention list")));
  }
  if (target.items().size() + items->size() > social::kMaxCollectionEntries) {
    return CallOutcome::Return(ErrorDict(social::TooManyText("mentions on this tweet")));
  }
  if (IsAliased(tweet_id)) {
    // The shared default list: every tweet posted without `mentions` sees the extension.
    default_mentions_.insert(default_mentions_.end(), items->begin(), items->end());
    for (const PyValue& key : aliased_keys_) {
      PyValue* aliased_tweet = tweets_.dict().Find(key);
      if (aliased_tweet == nullptr || !aliased_tweet->is_dict()) continue;
      PyValue* m = aliased_tweet->dict().Find("mentions");
      if (m != nullptr) *m = PyValue::List(default_mentions_);
    }
  } else {
    target.items().insert(target.items().end(), items->begin(), items->end());
  }
  return CallOutcome::Return(
      MakeDict({{"mention_status", PyValue::Str("Users mentioned successfully")}}));
}

CallOutcome TwitterApi::FollowUser(const std::vector<PyValue>& a) {
  const PyValue& name = a[0];
  if (!authenticated_.Truthy()) {
    return CallOutcome::Return(ErrorDict(NotAuthenticated("following")));
  }
  absl::StatusOr<bool> following = social::PyContains(following_list_, name);
  if (!following.ok()) return RaiseFrom(following.status());
  if (*following) return CallOutcome::Return(MakeDict({{"follow_status", PyValue::Bool(false)}}));
  // Hostile-input limits (before any state change).
  if (social::ApproxSize(name) > social::kMaxStoredValueBytes) {
    return CallOutcome::Return(ErrorDict(social::TooLargeText("User name")));
  }
  if (following_list_.is_list() &&
      following_list_.items().size() >= social::kMaxCollectionEntries) {
    return CallOutcome::Return(ErrorDict(social::TooManyText("followed users")));
  }
  absl::Status appended = social::PyAppend(following_list_, name);
  if (!appended.ok()) return RaiseFrom(appended);
  return CallOutcome::Return(MakeDict({{"follow_status", PyValue::Bool(true)}}));
}

CallOutcome TwitterApi::ListAllFollowing(const std::vector<PyValue>& /*a*/) {
  if (!authenticated_.Truthy()) {
    return CallOutcome::Return(ErrorDict(NotAuthenticated("listing following")));
  }
  return CallOutcome::Return(MakeDict({{"following_list", following_list_}}));
}

CallOutcome TwitterApi::UnfollowUser(const std::vector<PyValue>& a) {
  const PyValue& name = a[0];
  if (!authenticated_.Truthy()) {
    return CallOutcome::Return(ErrorDict(NotAuthenticated("unfollowing")));
  }
  absl::StatusOr<bool> following = social::PyContains(following_list_, name);
  if (!following.ok()) return RaiseFrom(following.status());
  if (!*following) {
    return CallOutcome::Return(MakeDict({{"unfollow_status", PyValue::Bool(false)}}));
  }
  if (!following_list_.is_list()) {
    return RaiseFrom(social::AttributeError(following_list_, "remove"));
  }
  PyList& items = following_list_.items();
  for (auto it = items.begin(); it != items.end(); ++it) {
    if (*it == name) {
      items.erase(it);
      break;
    }
  }
  return CallOutcome::Return(MakeDict({{"unfollow_status", PyValue::Bool(true)}}));
}

CallOutcome TwitterApi::GetTweet(const std::vector<PyValue>& a) {
  const PyValue& tweet_id = a[0];
  absl::StatusOr<bool> found = social::PyContains(tweets_, tweet_id);
  if (!found.ok()) return RaiseFrom(found.status());
  if (!*found) return CallOutcome::Return(TweetNotFound(tweet_id));
  return CallOutcome::Return(*tweets_.dict().Find(tweet_id));
}

CallOutcome TwitterApi::GetUserTweets(const std::vector<PyValue>& a) {
  const PyValue& username = a[0];
  PyList result;
  for (const auto& [key, tweet] : tweets_.dict()) {
    absl::StatusOr<PyValue> author = TweetField(tweet, "username");
    if (!author.ok()) return RaiseFrom(author.status());
    if (*author == username) result.push_back(tweet);
  }
  return CallOutcome::Return(PyValue::List(std::move(result)));
}

CallOutcome TwitterApi::SearchTweets(const std::vector<PyValue>& a) {
  const PyValue& keyword = a[0];
  PyList result;
  for (const auto& [key, tweet] : tweets_.dict()) {
    // keyword.lower() in tweet["content"].lower() or keyword.lower() in [tag.lower() ...]
    absl::StatusOr<std::string> kw = social::PyLowerOf(keyword);
    if (!kw.ok()) return RaiseFrom(kw.status());
    absl::StatusOr<PyValue> content = TweetField(tweet, "content");
    if (!content.ok()) return RaiseFrom(content.status());
    absl::StatusOr<std::string> content_lower = social::PyLowerOf(*content);
    if (!content_lower.ok()) return RaiseFrom(content_lower.status());
    bool match = content_lower->find(*kw) != std::string::npos;
    if (!match) {
      absl::StatusOr<PyValue> tags = TweetField(tweet, "tags");
      if (!tags.ok()) return RaiseFrom(tags.status());
      absl::StatusOr<PyList> tag_items = social::PyIterate(*tags);
      if (!tag_items.ok()) return RaiseFrom(tag_items.status());
      std::vector<std::string> lowered;
      for (const PyValue& tag : *tag_items) {
        absl::StatusOr<std::string> tag_lower = social::PyLowerOf(tag);
        if (!tag_lower.ok()) return RaiseFrom(tag_lower.status());
        lowered.push_back(*std::move(tag_lower));
      }
      for (const std::string& t : lowered) match = match || t == *kw;
    }
    if (match) result.push_back(tweet);
  }
  return CallOutcome::Return(PyValue::List(std::move(result)));
}

CallOutcome TwitterApi::GetTweetComments(const std::vector<PyValue>& a) {
  const PyValue& tweet_id = a[0];
  absl::StatusOr<bool> found = social::PyContains(tweets_, tweet_id);
  if (!found.ok()) return RaiseFrom(found.status());
  if (!*found) return CallOutcome::Return(TweetNotFound(tweet_id));
  if (!comments_.is_dict()) return RaiseFrom(social::AttributeError(comments_, "get"));
  const PyValue* list = comments_.dict().Find(tweet_id);
  return CallOutcome::Return(list != nullptr ? *list : PyValue::List());
}

CallOutcome TwitterApi::GetUserStats(const std::vector<PyValue>& a) {
  const PyValue& username = a[0];
  int64_t tweet_count = 0;
  for (const auto& [key, tweet] : tweets_.dict()) {
    absl::StatusOr<PyValue> author = TweetField(tweet, "username");
    if (!author.ok()) return RaiseFrom(author.status());
    if (*author == username) ++tweet_count;
  }
  int64_t following_count = 0;
  if (username == username_) {
    absl::StatusOr<int64_t> n = social::PyLen(following_list_);
    if (!n.ok()) return RaiseFrom(n.status());
    following_count = *n;
  }
  // len(self.retweets.get(username, []))
  if (!retweets_.is_dict()) return RaiseFrom(social::AttributeError(retweets_, "get"));
  absl::Status hashable = social::CheckHashable(username);
  if (!hashable.ok()) return RaiseFrom(hashable);
  int64_t retweet_count = 0;
  if (const PyValue* list = retweets_.dict().Find(username); list != nullptr) {
    absl::StatusOr<int64_t> n = social::PyLen(*list);
    if (!n.ok()) return RaiseFrom(n.status());
    retweet_count = *n;
  }
  return CallOutcome::Return(MakeDict({{"tweet_count", PyValue::Int(tweet_count)},
                                       {"following_count", PyValue::Int(following_count)},
                                       {"retweet_count", PyValue::Int(retweet_count)}}));
}

std::unique_ptr<ToolApi> NewTwitterApi() { return std::make_unique<TwitterApi>(); }

}  // namespace envtune
