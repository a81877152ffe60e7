// CNghttp2: nghttp2 1.52 (Debian 12) for the HTTP/2 server. System library; found with pkg-config.
#include <nghttp2/nghttp2.h>
