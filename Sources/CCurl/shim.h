// libcurl (libcurl4-openssl-dev) for TwilioKit's REST transport. Swift cannot call C's variadic functions, so
// curl_easy_setopt, curl_multi_setopt and curl_easy_getinfo are reached through one typed wrapper per argument type.
#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>

static inline CURLcode a2p_easy_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode a2p_easy_setopt_pointer(CURL *handle, CURLoption option, const void *value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode a2p_easy_setopt_callback(CURL *handle, CURLoption option, curl_write_callback value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode a2p_easy_setopt_prereq(CURL *handle, CURLoption option, curl_prereq_callback value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode a2p_easy_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return curl_easy_getinfo(handle, info, value);
}
static inline CURLMcode a2p_multi_setopt_long(CURLM *multi, CURLMoption option, long value) {
    return curl_multi_setopt(multi, option, value);
}
