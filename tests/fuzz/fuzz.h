/* fuzz.h — shared by the libFuzzer targets of tests/fuzz/ only.
 *
 * A target checks invariants with FUZZ_CHECK: a broken one aborts, which
 * libFuzzer reports as a crash and saves the input, the same as a
 * sanitizer finding. Parsers themselves never abort on bad input; only the
 * targets do, when a parser's answer contradicts itself.
 */
#ifndef PLEXUS_FUZZ_H
#define PLEXUS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(cond)                                                                                               \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "fuzz invariant failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__);                         \
            abort();                                                                                                   \
        }                                                                                                              \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
