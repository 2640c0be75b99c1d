// One Meta node per dataset; neurons and synapses unique within their dataset.
CREATE CONSTRAINT meta_dataset_unique IF NOT EXISTS FOR (m:Meta) REQUIRE m.dataset IS UNIQUE;
CREATE CONSTRAINT neuron_body_unique IF NOT EXISTS FOR (n:Neuron) REQUIRE (n.dataset, n.bodyId) IS UNIQUE;
CREATE CONSTRAINT segment_body_unique IF NOT EXISTS FOR (n:Segment) REQUIRE (n.dataset, n.bodyId) IS UNIQUE;
CREATE CONSTRAINT synapse_id_unique IF NOT EXISTS FOR (s:Synapse) REQUIRE (s.dataset, s.synapseId) IS UNIQUE;
CREATE CONSTRAINT synapse_set_unique IF NOT EXISTS FOR (s:SynapseSet) REQUIRE (s.dataset, s.preBodyId, s.postBodyId) IS UNIQUE;
