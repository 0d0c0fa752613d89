#!/bin/sh
# Re-vendor the browser libraries from the npm registry, checking each tarball's integrity, and keep
# only the files the pages load, with each package's licence. The pages need no CDN at run time.
# axe-core (accessibility checks) goes to tests/vendor: the browser tests run it, the pages never load it.
#   sh flask_front_end/static/vendor/fetch.sh
# leaflet.markercluster 1.5.1, not 1.5.3: 1.5.3 was published to npm without its built JavaScript.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dest=$here
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fetch() {  # name version integrity, then "source destination" pairs under package/
    name=$1 version=$2 integrity=$3
    shift 3
    (cd "$work" && npm pack "$name@$version" --silent > /dev/null)
    tarball="$work/$(echo "$name" | tr -d @ | tr / -)-$version.tgz"
    actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
    [ "$actual" = "$integrity" ] || { echo "integrity mismatch for $name@$version" >&2; exit 1; }
    rm -rf "$work/package" "${dest:?}/$name"
    tar xzf "$tarball" -C "$work"
    while [ $# -gt 0 ]; do
        mkdir -p "$(dirname "$dest/$name/$2")"
        cp -R "$work/package/$1" "$dest/$name/$2"
        shift 2
    done
    echo "$name@$version" > "$dest/$name/VERSION"
}

fetch leaflet 1.9.4 sha512-nxS1ynzJOmOlHp+iL3FyWqK89GtNL8U8rvlMOsQdTTssxZwCXh8N2NB3GDQOL+YR3XnWyZAxwQixURb+FA74PA== \
    dist/leaflet.js leaflet.js dist/leaflet.css leaflet.css dist/images images LICENSE LICENSE
fetch leaflet.markercluster 1.5.1 sha512-dRGndfMZibkWMBD7g8h+lJW0R0keTx1GGMErre7uhqnKiYBoMxR2VPX6Sy8oGNzg+FA7FKtTuO1hGh5HtV9s2g== \
    dist/leaflet.markercluster.js leaflet.markercluster.js dist/MarkerCluster.css MarkerCluster.css \
    dist/MarkerCluster.Default.css MarkerCluster.Default.css MIT-LICENCE.txt LICENSE
fetch chart.js 4.6.1 sha512-hJyniucsFmq//EvXYvJ6c6mahPoI3kaxdjVH8awTaJ/fDNWeSqqqArixMJWkWNN6fcYvPU3HneSANFNYtRi61g== \
    dist/chart.umd.min.js chart.umd.min.js LICENSE.md LICENSE

dest=$(cd "$here/../../../tests" && pwd)/vendor
fetch axe-core 4.14.1 sha512-FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37OgudVGtQ== \
    axe.min.js axe.min.js LICENSE LICENSE
