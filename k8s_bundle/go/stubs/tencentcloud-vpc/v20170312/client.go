// Package v20170312 stands in for Tencent Cloud's VPC client, whose module the Go module proxy
// does not serve. flannel's main links every backend; with this stand-in its tencent-vpc backend
// fails with errUnavailable, and every other backend is flannel's own. An air-gapped cluster
// cannot reach Tencent Cloud's API anyway.
package v20170312

import "errors"

var errUnavailable = errors.New("the tencent-vpc backend is not part of this flannel build")

// Client answers every call with errUnavailable.
type Client struct{}

// NewClientWithSecretId returns a client that cannot call Tencent Cloud.
func NewClientWithSecretId(secretID, secretKey, region string) (*Client, error) {
	return &Client{}, errUnavailable
}

// Filter selects route tables.
type Filter struct {
	Name   *string
	Values []*string
}

// Route is one route of a route table.
type Route struct {
	DestinationCidrBlock *string
	GatewayType          *string
	GatewayId            *string
	RouteType            *string
	RouteId              *uint64
	Enabled              *bool
}

// RouteTable is a VPC route table.
type RouteTable struct {
	RouteTableId *string
	RouteSet     []*Route
}

// DescribeRouteTablesRequest asks for route tables.
type DescribeRouteTablesRequest struct{ Filters []*Filter }

// DescribeRouteTablesResponseParams holds the route tables found.
type DescribeRouteTablesResponseParams struct{ RouteTableSet []*RouteTable }

// DescribeRouteTablesResponse wraps the parameters, as the API does.
type DescribeRouteTablesResponse struct {
	Response *DescribeRouteTablesResponseParams
}

// RoutesRequest changes routes of a table.
type RoutesRequest struct {
	RouteTableId *string
	Routes       []*Route
}

// DeleteRoutesRequest deletes routes.
type DeleteRoutesRequest = RoutesRequest

// CreateRoutesRequest creates routes.
type CreateRoutesRequest = RoutesRequest

// RoutesResponse is empty: nothing is ever changed.
type RoutesResponse struct{}

// NewDescribeRouteTablesRequest returns an empty request.
func NewDescribeRouteTablesRequest() *DescribeRouteTablesRequest {
	return &DescribeRouteTablesRequest{}
}

// NewDeleteRoutesRequest returns an empty request.
func NewDeleteRoutesRequest() *DeleteRoutesRequest { return &RoutesRequest{} }

// NewCreateRoutesRequest returns an empty request.
func NewCreateRoutesRequest() *CreateRoutesRequest { return &RoutesRequest{} }

// DescribeRouteTables fails: the backend is not part of this build.
func (*Client) DescribeRouteTables(*DescribeRouteTablesRequest) (*DescribeRouteTablesResponse, error) {
	return nil, errUnavailable
}

// DeleteRoutes fails: the backend is not part of this build.
func (*Client) DeleteRoutes(*DeleteRoutesRequest) (*RoutesResponse, error) {
	return nil, errUnavailable
}

// CreateRoutes fails: the backend is not part of this build.
func (*Client) CreateRoutes(*CreateRoutesRequest) (*RoutesResponse, error) {
	return nil, errUnavailable
}
