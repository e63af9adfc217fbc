#!/bin/sh
# Entrypoint of the locally built `bash` test image; behaves like the one in the public
# `bash` image, so that ACR task steps such as `cmd: bash echo hello world` work:
#   no arguments, or a first argument that is an option  -> bash "$@"  (bash -c 'echo hi')
#   anything else                                        -> run it as a command (echo hello world)
set -eu
if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
  exec bash "$@"
fi
exec "$@"
