/*
 * Defaults for dbgbox built with a sanitizer (scripts/sanitizers.sh; nothing in a normal build).
 *
 * The integration tests run the installed dbgbox as an ordinary user with a clean environment, so
 * ASAN_OPTIONS cannot reach it; the options live in the binary instead. LeakSanitizer is off:
 * every report it gives here is an allocation of Foundation's or the Swift runtime's that lives
 * until exit. Memory errors (use after free, double free, overflows) still abort with a report
 * and a non-zero exit, which the tests see.
 */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "detect_leaks=0"; }
#endif
#endif
