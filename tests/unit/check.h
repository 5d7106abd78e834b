/* A tiny test harness: CHECK records a failure and goes on; each TEST counts
 * as passed when none of its checks failed. main() ends with the summary line
 * "<suite>: N passed, N failed". */
#ifndef TC_CHECK_H
#define TC_CHECK_H

#include <stdio.h>

static int tc_checks_failed_, tc_tests_passed_, tc_tests_failed_;

#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);                     \
      tc_checks_failed_++;                                                                         \
    }                                                                                              \
  } while (0)

#define RUN(test)                                                                                  \
  do {                                                                                             \
    int before_ = tc_checks_failed_;                                                               \
    test();                                                                                        \
    if (tc_checks_failed_ == before_) {                                                            \
      tc_tests_passed_++;                                                                          \
    } else {                                                                                       \
      tc_tests_failed_++;                                                                          \
      fprintf(stderr, "FAIL %s\n", #test);                                                         \
    }                                                                                              \
  } while (0)

#define SUMMARY(suite)                                                                             \
  (printf("%s: %d passed, %d failed\n", suite, tc_tests_passed_, tc_tests_failed_),                \
   tc_tests_failed_ ? 1 : 0)

#endif
