"""connectome-query: from an EM volume to circuit answers.

The import namespace of the project. Each subpackage is a folder at the top of the repository
(this folder links to them), so the wheel installs one top-level name:

    reconstruct   raw EM -> segments, synapses, skeletons, compartments, quality metrics
    ingest        reconstructions and public connectome tables -> Neo4j
    schema        the contract: graph model, vocabulary, migrations, GraphQL SDL, Bloom
    graphdb       settings, the Neo4j driver and the local server
    graphql_api   circuit queries over HTTP
    export        connectivity matrices to files
    plotting      charts shared by the pages, the run report and `connectome plot`
    cli           the `connectome` command
"""
