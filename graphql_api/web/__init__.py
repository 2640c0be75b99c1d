"""What the API serves to a browser, offline: GraphiQL and Swagger from vendored assets, the
Neuroglancer client from the `neuroglancer` package, each dataset's volumes as precomputed over
HTTP, and dataset and neuron pages. Nothing here loads anything from outside the server."""
