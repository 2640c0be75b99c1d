"""The label rewrite and the plan check on their own (no database): plans shaped as Neo4j 5.26
renders them."""

from __future__ import annotations

import pytest

from connectome_query.graphql_api.cypher_plan import PlanRefused
from connectome_query.graphql_api.neuprint.scope import Scope, check_scoped, rewrite
from connectome_query.graphql_api.neuprint.timeboxed import parse

SCOPE = Scope(name="cook2019", key="cook2019@v2")
OWN = "`cook2019@v2_Neuron`"


@pytest.mark.parametrize(("text", "want"), [
    ("MATCH (n:Neuron) RETURN n", f"MATCH (n:{OWN}) RETURN n"),
    ("MATCH (n :cook2019_Neuron) RETURN n", f"MATCH (n :{OWN}) RETURN n"),
    ("MATCH (n:`Neuron`) RETURN n", f"MATCH (n:{OWN}) RETURN n"),
    ("MATCH (n:Neuron {type: 'Neuron'}) RETURN n", f"MATCH (n:{OWN} {{type: 'Neuron'}}) RETURN n"),
    ("MATCH (n:Neuron)-[:ConnectsTo]->(m:Segment|Neuron) WHERE m:Neuron RETURN n",
     f"MATCH (n:{OWN})-[:ConnectsTo]->(m:`cook2019@v2_Segment`|{OWN}) WHERE m:{OWN} RETURN n"),
    ("RETURN {Neuron: 1} AS m", "RETURN {Neuron: 1} AS m"),
    ("MATCH (n:Neuron) // :Neuron in a comment\nRETURN 'a:Neuron'",
     f"MATCH (n:{OWN}) // :Neuron in a comment\nRETURN 'a:Neuron'"),
    ("MATCH (n:varshney2011_Neuron) RETURN n", "MATCH (n:varshney2011_Neuron) RETURN n"),
])
def test_rewrite(text: str, want: str) -> None:
    assert rewrite(text, SCOPE) == want


def leaf(operator: str, details: str) -> dict:
    return {"operatorType": "ProduceResults@neo4j", "args": {}, "children": [
        {"operatorType": f"{operator}@neo4j", "args": {"Details": details}, "children": []}]}


@pytest.mark.parametrize(("operator", "details"), [
    ("NodeByLabelScan", f"n:{OWN}"),
    ("NodeCountFromCountStore", f"count( (:{OWN}) ) AS `count(n)`"),
    ("RelationshipCountFromCountStore", f"count( (:{OWN})-[:ConnectsTo]->() ) AS c"),
    ("IntersectionNodeByLabelsScan", f"n:{OWN}&Segment"),
    ("UnionNodeByLabelsScan", f"n:{OWN}|`cook2019@v2_Segment`"),
    ("NodeIndexSeek", f"RANGE INDEX n:{OWN}(bodyId) WHERE bodyId IN $autolist_0"),
    ("NodeIndexSeek", f"n:{OWN}(type) WHERE type = $autostring_0"),
    ("Argument", ""),
    ("Projection", "$autolist_0 AS n_search_bodyId"),
])
def test_scoped_leaves_pass(operator: str, details: str) -> None:
    check_scoped(leaf(operator, details), SCOPE)


@pytest.mark.parametrize(("operator", "details"), [
    ("AllNodesScan", "n"),
    ("NodeByLabelScan", "n:Neuron"),
    ("NodeByLabelScan", "n:`cook2019@v1_Neuron`"),
    ("NodeByLabelScan", "n:`cook2019@v2_Neuron2`"),
    ("NodeByLabelScan", "n:`x:cook2019@v2_Neuron`"),
    ("NodeByLabelScan", "`x:``cook2019@v2_Neuron```:Neuron"),
    ("NodeByLabelScan", "`x:cook2019@v2_Neuron`:Neuron"),
    ("NodeUniqueIndexSeek", "UNIQUE n:Neuron(dataset, bodyId) WHERE dataset = $a"),
    ("NodeIndexSeek", "RANGE INDEX n:Neuron(dataset, bodyId) WHERE dataset = $a"),
    ("NodeCountFromCountStore", "count( () ) AS c"),
    ("RelationshipCountFromCountStore", "count( ()-[:ConnectsTo]->() ) AS c"),
    ("UnionNodeByLabelsScan", f"n:{OWN}|Segment"),
    ("DirectedRelationshipTypeScan", "(a)-[r:ConnectsTo]->(b)"),
    ("NodeByElementIdSeek", "n WHERE elementId(n) = $x"),
])
def test_unscoped_leaves_refused(operator: str, details: str) -> None:
    with pytest.raises(PlanRefused, match="outside dataset 'cook2019'"):
        check_scoped(leaf(operator, details), SCOPE)


def test_procedures_refused() -> None:
    plan = {"operatorType": "ProduceResults@neo4j", "args": {}, "children": [
        {"operatorType": "ProcedureCall@neo4j", "args": {"Details": "db.labels()"},
         "children": [{"operatorType": "NodeByLabelScan@neo4j",
                       "args": {"Details": f"n:{OWN}"}, "children": []}]}]}
    with pytest.raises(PlanRefused, match="procedures"):
        check_scoped(plan, SCOPE)


def test_timeboxed_form() -> None:
    boxed = parse('CALL apoc.cypher.runTimeboxed("MATCH (n:Neuron) WHERE n.type = \\"A\\" '
                  'RETURN count(n) as c",\n {}, 5000) YIELD value\n RETURN value.c as count')
    assert boxed is not None
    assert boxed.inner == 'MATCH (n:Neuron) WHERE n.type = "A" RETURN count(n) as c'
    assert boxed.seconds == 5.0
    assert boxed.columns == (("c", "count"),)
    assert parse('CALL apoc.cypher.runTimeboxed("x", {a: 1}, 5) YIELD value RETURN value') is None
    assert parse("MATCH (n) RETURN n") is None
