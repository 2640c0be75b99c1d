// Look-ups the API makes: by name (instance), type, class, and synapse compartment.
CREATE INDEX neuron_instance IF NOT EXISTS FOR (n:Neuron) ON (n.dataset, n.instance);
CREATE INDEX neuron_type IF NOT EXISTS FOR (n:Neuron) ON (n.dataset, n.type);
CREATE INDEX neuron_cell_class IF NOT EXISTS FOR (n:Neuron) ON (n.dataset, n.cellClass);
CREATE INDEX neuron_dataset IF NOT EXISTS FOR (n:Neuron) ON (n.dataset);
CREATE INDEX synapse_post_compartment IF NOT EXISTS FOR (s:Synapse) ON (s.dataset, s.postCompartment);
CREATE INDEX synapse_pre_body IF NOT EXISTS FOR (s:Synapse) ON (s.dataset, s.preBodyId);
CREATE INDEX synapse_post_body IF NOT EXISTS FOR (s:Synapse) ON (s.dataset, s.postBodyId);
CREATE INDEX connects_to_weight IF NOT EXISTS FOR ()-[c:ConnectsTo]-() ON (c.weight);
CREATE INDEX gap_junction_weight IF NOT EXISTS FOR ()-[g:GapJunction]-() ON (g.weight);
CREATE POINT INDEX synapse_location IF NOT EXISTS FOR (s:Synapse) ON (s.location);
