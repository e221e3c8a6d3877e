package main

// graph_aggregates.json: Tyk's per-API aggregates of GraphQL and MCP records
// (analytics.AggregateGraphData / analytics.AggregateMCPData, the aggregation behind the
// sql-graph-aggregate and sql-mcp-aggregate pumps), as tyk_graph_aggregated /
// tyk_mcp_aggregated rows.

import (
	"fmt"
	"sort"

	"github.com/TykTechnologies/tyk-pump/analytics"
)

type apiAggCase struct {
	Name            string        `json:"name"`
	Description     string        `json:"description"`
	Kind            string        `json:"kind"`
	AggregationTime int           `json:"aggregation_time"`
	Records         []aggInput    `json:"records"`
	SQLRows         []interface{} `json:"sql_rows"`
}

type graphAggregatesFile struct {
	Generator generatorInfo `json:"generator"`
	Cases     []apiAggCase  `json:"cases"`
}

func gqlRec(apiID, org string, code int, lat int64, ts int, op analytics.GraphQLOperations, types map[string][]string, roots []string, hasErrors bool) analytics.AnalyticsRecord {
	r := rec(org, apiID, "Graph API", "v1", "key-gq", "gq", "", "POST", "/graphql", code, lat, lat, lat-1, at(14, ts, 0, 0), true, "GB", []string{analytics.PredefinedTagGraphAnalytics})
	r.GraphQLStats = analytics.GraphQLStats{IsGraphQL: true, OperationType: op, Types: types, RootFields: roots, HasErrors: hasErrors}
	if hasErrors {
		r.GraphQLStats.Errors = []analytics.GraphError{{Message: "boom"}}
	}
	return r
}

func mcpRec(apiID, org string, code int, lat int64, ts int, method, ptype, pname string) analytics.AnalyticsRecord {
	r := rec(org, apiID, "MCP API", "v1", "key-mcp", "", "", "POST", "/mcp", code, lat, lat, lat-1, at(14, ts, 0, 0), true, "US", []string{analytics.PredefinedTagMCPAnalytics})
	r.MCPStats = analytics.MCPStats{IsMCP: true, JSONRPCMethod: method, PrimitiveType: ptype, PrimitiveName: pname}
	return r
}

func apiRows(apiID, org string, bucket int64, dims []analytics.Dimension) []interface{} {
	var out []analytics.GraphSQLAnalyticsRecordAggregate
	for _, d := range dims {
		row := analytics.GraphSQLAnalyticsRecordAggregate{ID: rowID(bucket, apiID, d.Name, d.Value), OrgID: org, APIID: apiID, TimeStamp: bucket, Counter: *d.Counter, Dimension: d.Name, DimensionValue: d.Value}
		row.ProcessStatusCodes(row.Counter.ErrorMap)
		row.Counter.ErrorList, row.Counter.ErrorMap = nil, nil
		out = append(out, row)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	var rows []interface{}
	for _, r := range out {
		cols := sqlColumns(r.ID, r.OrgID, r.Dimension, r.DimensionValue, r.TimeStamp, r.Counter, r.Code)
		cols["api_id"] = r.APIID
		rows = append(rows, map[string]interface{}{"id_source": fmt.Sprintf("%v", r.TimeStamp) + apiID + r.Dimension + r.DimensionValue, "columns": cols})
	}
	return rows
}

func buildAPIAggCase(name, desc, kind string, recs []analytics.AnalyticsRecord, aggTime int) apiAggCase {
	c := apiAggCase{Name: name, Description: desc, Kind: kind, AggregationTime: aggTime}
	var data []interface{}
	for _, r := range recs {
		d, in := encodeDecode(r)
		data = append(data, d)
		c.Records = append(c.Records, in)
	}
	var apis []string
	if kind == "graph" {
		res := analytics.AggregateGraphData(data, "", aggTime)
		for api := range res {
			apis = append(apis, api)
		}
		sort.Strings(apis)
		for _, api := range apis {
			ag := res[api]
			c.SQLRows = append(c.SQLRows, apiRows(api, ag.OrgID, ag.TimeStamp.Unix(), ag.Dimensions())...)
		}
		return c
	}
	res := analytics.AggregateMCPData(data, "", aggTime)
	for api := range res {
		apis = append(apis, api)
	}
	sort.Strings(apis)
	for _, api := range apis {
		ag := res[api]
		c.SQLRows = append(c.SQLRows, apiRows(api, ag.OrgID, ag.TimeStamp.Unix(), ag.Dimensions())...)
	}
	return c
}

func graphAggregatesFixture() graphAggregatesFile {
	userQ := map[string][]string{"Query": {"user"}, "User": {"id", "name"}}
	graph := []analytics.AnalyticsRecord{
		gqlRec(api1, "orgA", 200, 20, 5, analytics.OperationQuery, userQ, []string{"user"}, false),
		gqlRec(api1, "orgA", 200, 8, 6, analytics.OperationQuery, userQ, []string{"user"}, true),
		gqlRec(api1, "orgB", 500, 50, 7, analytics.OperationMutation, map[string][]string{"Mutation": {"createUser"}}, []string{"createUser"}, false),
		gqlRec(api2, "orgA", 201, 3, 8, analytics.OperationSubscription, nil, nil, false),
		gqlRec(api1, "orgA", 200, 2, 9, analytics.OperationUnknown, map[string][]string{"Query": {"user"}}, []string{"user"}, false),
		rec("orgA", api1, "Users API", "v1", "key-alice-hash", "alice", "", "GET", "/users/42", 200, 20, 20, 15, at(14, 10, 0, 0), true, "GB", nil),
		mcpRec(api1, "orgA", 200, 5, 11, "tools/call", "tool", "weather"),
	}
	mcp := []analytics.AnalyticsRecord{
		mcpRec(api1, "orgA", 200, 5, 5, "tools/call", "tool", "weather"),
		mcpRec(api1, "orgA", 500, 30, 6, "tools/call", "tool", "weather"),
		mcpRec(api1, "orgA", 200, 2, 7, "resources/read", "resource", "doc"),
		mcpRec(api1, "orgA", 200, 9, 8, "prompts/get", "", "bare"),
		mcpRec(api2, "orgB", 404, 4, 9, "tools/list", "", ""),
		rec("orgA", api1, "Users API", "v1", "key-alice-hash", "alice", "", "GET", "/users/42", 200, 20, 20, 15, at(14, 10, 0, 0), true, "GB", nil),
		gqlRec(api1, "orgA", 200, 20, 11, analytics.OperationQuery, userQ, []string{"user"}, false),
	}
	return graphAggregatesFile{
		Generator: genInfo(
			"All input records are built in Go, msgpack-encoded and decoded back with Tyk's serializer, as in aggregates.json.",
			"graph cases: analytics.AggregateGraphData(decoded, \"\", aggregation_time) -- GraphQL records only, one aggregate per API id; mcp cases: analytics.AggregateMCPData(decoded, \"\", aggregation_time) -- MCP records only, one aggregate per API id.",
			"sql_rows: one row per ag.Dimensions() entry of each API's aggregate (sorted by API id, then row id), built as pumps/graph_sql_aggregate.go and pumps/mcp_sql_aggregate.go DoAggregatedWriting do: id = hex(bucket unix seconds + apiID + dimension + value), org_id = the aggregate's OrgID, api_id, Code.ProcessStatusCodes(ErrorMap), ErrorList = ErrorMap = nil; columns as in aggregates.json plus api_id.",
			"No case has a 3xx GraphQL record with errors: there Tyk's graph dimensions get success -1, which the Python pump keeps at 0 on purpose (unit-tested separately).",
		),
		Cases: []apiAggCase{
			buildAPIAggCase("graph_two_apis", "GraphQL records of two APIs (api1's third record from orgB: the aggregate keeps orgA, its first record's org), Query/Mutation/Subscription/unknown operations, a 200 with GraphQL errors (an error in the graph dimensions only), a 500, types/fields/rootfields; plus a REST and an MCP record that AggregateGraphData skips. aggregation_time 60.", "graph", graph, 60),
			buildAPIAggCase("graph_per_minute", "The same batch with aggregation_time 1 (store_analytics_per_minute).", "graph", graph, 1),
			buildAPIAggCase("mcp_two_apis", "MCP records of two APIs: methods, primitive types, names with and without a type (<type>_<name>), an empty method/type/name (no dimension), a 500 and a 404; plus a REST and a GraphQL record that AggregateMCPData skips. aggregation_time 60.", "mcp", mcp, 60),
		},
	}
}
