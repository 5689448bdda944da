#ifndef DOMUS_LIB_SANITIZER_H
#define DOMUS_LIB_SANITIZER_H

/*
 * DOMUS_UNDER_ASAN: built with AddressSanitizer (the suite's sanitizer and
 * fuzz builds, never an installed one). gcc says __SANITIZE_ADDRESS__,
 * clang only __has_feature.
 */
#if defined(__SANITIZE_ADDRESS__)
#define DOMUS_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DOMUS_UNDER_ASAN 1
#endif
#endif

#endif
