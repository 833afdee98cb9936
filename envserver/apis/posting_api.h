// TwitterAPI (BFCL "posting" API): tweets, retweets, comments, mentions and follows, byte-exact
// with BFCL's Python backend (../shared/bfcl/spec/posting_api.md).
//
// `tweets` has int keys (the scenario's string keys go through Python int()); `comments` keeps
// the scenario's string keys next to the int keys `comment` adds. List-returning methods
// (get_user_tweets, search_tweets, get_tweet_comments) return lists, which the executor renders
// with Python repr. Python's shared mutable default `mentions=[]` of post_tweet is modelled per
// instance (SPEC.md: every episode starts fresh): tweets posted without `mentions` share one
// list, so `mention` on one of them shows on all of them. Wrong argument types never crash: they
// give Python's exception text. Hostile-input limits (social_pyops.h): a tweet, comment or
// followed name over 16 KiB, or a collection of 1000 entries, is refused with {"error": ...}.
// Not affected by augmentation (METHOD.md §5: TwitterAPI is unchanged).
#ifndef ENVTUNE_ENVSERVER_APIS_POSTING_API_H_
#define ENVTUNE_ENVSERVER_APIS_POSTING_API_H_

#include <string_view>
#include <vector>

#include "envserver/pyvalue.h"
#include "envserver/tool_api.h"

namespace envtune {

class TwitterApi : public ToolApiBase<TwitterApi> {
 public:
  TwitterApi();  // loaded with the default scenario ({})

  std::string_view ClassName() const override { return "TwitterAPI"; }
  void LoadScenario(const PyValue& scenario, bool long_context) override;
  // {username, password, authenticated, tweets, comments, retweets, following_list,
  //  tweet_counter}; dict keys keep their Python types (tweets: int).
  PyValue PublicState() const override;
  // Notes whether post_tweet's `mentions` was omitted (it then aliases the shared default).
  CallOutcome Invoke(std::string_view method, const PyArgs& args) override;

  static const MethodTable& Methods();

  // One handler per BFCL method, in Python definition order; `a` holds the bound arguments.
  CallOutcome AuthenticateTwitter(const std::vector<PyValue>& a);
  CallOutcome PostingGetLoginStatus(const std::vector<PyValue>& a);
  CallOutcome PostTweet(const std::vector<PyValue>& a);
  CallOutcome Retweet(const std::vector<PyValue>& a);
  CallOutcome Comment(const std::vector<PyValue>& a);
  CallOutcome Mention(const std::vector<PyValue>& a);
  CallOutcome FollowUser(const std::vector<PyValue>& a);
  CallOutcome ListAllFollowing(const std::vector<PyValue>& a);
  CallOutcome UnfollowUser(const std::vector<PyValue>& a);
  CallOutcome GetTweet(const std::vector<PyValue>& a);
  CallOutcome GetUserTweets(const std::vector<PyValue>& a);
  CallOutcome SearchTweets(const std::vector<PyValue>& a);
  CallOutcome GetTweetComments(const std::vector<PyValue>& a);
  CallOutcome GetUserStats(const std::vector<PyValue>& a);

 private:
  bool IsAliased(const PyValue& key) const;
  void SetAliased(const PyValue& key, bool aliased);

  PyValue username_;
  PyValue password_;
  PyValue authenticated_;
  PyValue tweets_;
  PyValue comments_;
  PyValue retweets_;
  PyValue following_list_;
  PyValue tweet_counter_;
  // Python's shared default list of post_tweet's `mentions`, and the keys of the tweets whose
  // "mentions" is that list.
  PyList default_mentions_;
  std::vector<PyValue> aliased_keys_;
  bool mentions_omitted_ = false;  // set by Invoke for the post_tweet call in flight
};

}  // namespace envtune

#endif  // ENVTUNE_ENVSERVER_APIS_POSTING_API_H_
