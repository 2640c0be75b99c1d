#!/usr/bin/env bash
# Refresh the browser assets served from /static/vendor from the npm registry (pinned versions;
# the GraphiQL ones are the files Strawberry's template names, checked by their SRI hashes in
# tests/graphql_api/web). Neuroglancer's client is not copied: it comes with the `neuroglancer`
# PyPI package. Run from this folder; needs npm.
set -euo pipefail
cd "$(dirname "$0")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
( cd "$work" && npm pack --silent react@18.2.0 react-dom@18.2.0 js-cookie@3.0.5 graphiql@3.8.3 \
    @graphiql/plugin-explorer@1.0.2 swagger-ui-dist@5.35.0 >/dev/null )
take() {  # take TARBALL DEST FILE...
  local tgz=$1 dest=$2; shift 2
  mkdir -p "$dest" "$work/x"; rm -rf "$work/x"/*; tar xzf "$work/$tgz" -C "$work/x"
  for f in "$@"; do
    if [ -e "$work/x/package/$f" ]; then cp "$work/x/package/$f" "$dest/$(basename "$f")"
    else node -e "const p=require('$work/x/package/package.json');
      require('fs').writeFileSync('$dest/LICENSE', p.name+' '+p.version+': '+p.license+' licence (package.json; no licence file shipped)\\n')"; fi
  done
}
take react-18.2.0.tgz react umd/react.production.min.js LICENSE
take react-dom-18.2.0.tgz react-dom umd/react-dom.production.min.js LICENSE
take js-cookie-3.0.5.tgz js-cookie dist/js.cookie.min.js LICENSE
take graphiql-3.8.3.tgz graphiql graphiql.min.js graphiql.min.css LICENSE
take graphiql-plugin-explorer-1.0.2.tgz graphiql-plugin-explorer dist/index.umd.js dist/style.css LICENSE
take swagger-ui-dist-5.35.0.tgz swagger-ui swagger-ui-bundle.js swagger-ui.css favicon-32x32.png \
  LICENSE NOTICE swagger-ui-bundle.js.LICENSE.txt
