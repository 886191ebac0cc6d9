#!/bin/sh
# stylesearch for digiKam's Batch Queue Manager ("User Shell Script" tool): indexes each
# image of the queue so it can be found by art style, and passes the image on unchanged.
#
# digiKam puts the input and output file names into the tool's text in double quotes,
# without escaping them, then runs the text with /bin/sh (dash on Debian). The text to
# paste (bqm-user-script.txt) hands those two lines to this script on stdin through a
# quoted here-document, so names with spaces, quotes, $, ` or \ arrive intact.
# digiKam gives each item 60 s: everything below is bounded to 55 s.
set -u

IFS= read -r input || input=
IFS= read -r output || output=
input=${input#\"}; input=${input%\"}
output=${output#\"}; output=${output%\"}

if [ ! -f "$input" ] || [ -z "$output" ]; then
    echo "stylesearch: expected the input and output file names on stdin (paste bqm-user-script.txt into digiKam's User Shell Script tool)" >&2
    exit 2
fi
# The queue expects a new file at the output name: the image goes through unchanged.
cp -p -- "$input" "$output" || exit 1

case ${input##*/} in
    *.digikamtempfile.*)
        echo "stylesearch: not indexing an intermediate file of the queue; put this tool first" >&2
        exit 0 ;;
esac

set -- stylesearch  # `stylesearch plugins digikam --install` writes the full command here
# With the daemon running this returns at once (the daemon indexes in the background).
# Without it, each item is indexed here; one at a time, as queue threads would otherwise
# find the library locked by each other.
if command -v flock >/dev/null 2>&1; then
    set -- flock -w 50 "${XDG_RUNTIME_DIR:-/tmp}/stylesearch-digikam-bqm-$(id -u).lock" "$@"
fi
if command -v timeout >/dev/null 2>&1; then
    set -- timeout 55 "$@"
fi
"$@" index --json -- "$input"
