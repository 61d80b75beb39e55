/*
 * A tiny test harness for the C test programs: CHECK counts and reports,
 * CHECK_EQ shows both values, test_summary() prints "N passed, M failed"
 * and gives the exit status.
 */
#ifndef WSCONN_TEST_H
#define WSCONN_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_passed;
static int test_failed;

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (cond) {                                                          \
            test_passed++;                                                   \
        } else {                                                             \
            test_failed++;                                                   \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);  \
        }                                                                    \
    } while (0)

/* Compares two integers (as long long); on failure prints both. */
#define CHECK_EQ(actual, expected)                                           \
    do {                                                                     \
        long long check_a_ = (long long)(actual);                            \
        long long check_e_ = (long long)(expected);                          \
        if (check_a_ == check_e_) {                                          \
            test_passed++;                                                   \
        } else {                                                             \
            test_failed++;                                                   \
            fprintf(stderr, "FAIL %s:%d: %s == %lld, expected %s == %lld\n", \
                    __FILE__, __LINE__, #actual, check_a_, #expected,        \
                    check_e_);                                               \
        }                                                                    \
    } while (0)

/* Prints the totals; returns the exit status (0 only if nothing failed and
 * something was checked). */
static int test_summary(void) {
    printf("%d passed, %d failed\n", test_passed, test_failed);
    fflush(stdout);
    return (test_failed == 0 && test_passed > 0) ? 0 : 1;
}

#endif /* WSCONN_TEST_H */
