// Exception checks shared by the toolkit's tests: a call must throw the expected type, and its
// message must name what went wrong.
#pragma once

#include <gtest/gtest.h>

#include <exception>
#include <initializer_list>
#include <string>
#include <utility>

namespace tq_test {

inline bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// Runs f and returns the message of the E it throws. No exception, or an exception of another
// type, is a test failure (and returns "").
template <class E, class F>
std::string thrown_message(F&& f) {
  try {
    std::forward<F>(f)();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
    return {};
  }
  ADD_FAILURE() << "no exception";
  return {};
}

// Runs f, which must throw E with every one of words in its message.
template <class E, class F, class Words = std::initializer_list<std::string>>
void expect_error(F&& f, const Words& words) {
  const std::string msg = thrown_message<E>(std::forward<F>(f));
  for (const auto& w : words) EXPECT_TRUE(contains(msg, w)) << "missing '" << w << "' in: " << msg;
}

}  // namespace tq_test
