#!/bin/sh
# Helm 4 post-renderer: the rendered release on standard input, the secured one on standard
# output; what inject did goes to standard error. Extra arguments are inject's flags.
exec "${ECK_METRICS_GUARD:-eck-metrics-guard}" inject -f - "$@"
