"""The contract between the stages: graph model, vocabulary, migrations, GraphQL SDL and the
Bloom perspective."""
